#!/usr/bin/env python3
"""Per-slot plot of a local testnet run, from the nodes' outcome lines.

Usage: scripts/plot-testnet.py OUT_DIR SLOT_MS

Reads OUT_DIR/node*.log and writes OUT_DIR/slots.svg: above, each slot's
attestation latency (the latest `duty ok: attestations submitted` of any node,
ms after the slot start, against the attestation due time); below, per slot,
the attestations the nodes found included on chain (`duty included`, green)
and the attester items that failed, by reason (`duty failed`, red). Prints
the file's path. Standard library only.
"""
import glob
import re
import sys


def field(line, key):
    m = re.search(r"\b" + key + r'="?([^ "]+)', line)
    return m.group(1) if m else None


def main():
    out, slot_ms = sys.argv[1], int(sys.argv[2])
    latency, included, failed, reasons = {}, {}, {}, {}
    for path in sorted(glob.glob(out + "/node*.log")):
        per_node_included, per_node_failed = {}, {}
        for line in open(path, errors="replace"):
            slot, duty, count = field(line, "slot"), field(line, "duty"), field(line, "count")
            if duty != "attester" or not (slot and count):
                continue
            slot, count = int(slot), int(count)
            if "duty ok: attestations submitted" in line:
                ms = int(field(line, "latency_ms") or 0)
                latency[slot] = max(latency.get(slot, 0), ms)
            elif "duty included" in line:
                per_node_included[slot] = per_node_included.get(slot, 0) + count
            elif "duty failed" in line:
                per_node_failed[slot] = per_node_failed.get(slot, 0) + count
                reasons.setdefault(slot, set()).add(field(line, "reason") or "?")
        # Every node reports the same chain: the best node's view counts.
        for slot, n in per_node_included.items():
            included[slot] = max(included.get(slot, 0), n)
        for slot, n in per_node_failed.items():
            failed[slot] = max(failed.get(slot, 0), n)
    slots = sorted(set(latency) | set(included) | set(failed))
    width, height, left, top = 960, 460, 60, 30
    plot_w, lat_h, bar_h = width - left - 20, 220, 130
    path = out + "/slots.svg"
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="18" font-size="13">attestation latency per slot (ms after slot start) and attestations included / failed</text>' % left]
    if not slots:
        svg.append('<text x="%d" y="%d">no attester outcome lines in %s/node*.log</text>' % (left, top + 40, out))
    else:
        first, last = slots[0], slots[-1]
        span = max(1, last - first + 1)
        x = lambda s: left + (s - first + 0.5) * plot_w / span
        top_ms = max([slot_ms] + list(latency.values()))
        y_lat = lambda ms: top + lat_h - ms * lat_h / top_ms
        svg.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>' % (left, top + lat_h, left + plot_w, top + lat_h))
        due = slot_ms // 3
        svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#f57c00" stroke-dasharray="4"/>' % (left, y_lat(due), left + plot_w, y_lat(due)))
        svg.append('<text x="%d" y="%.1f" fill="#f57c00">due (%d ms)</text>' % (left + plot_w - 70, y_lat(due) - 3, due))
        for ms in (0, top_ms // 2, top_ms):
            svg.append('<text x="5" y="%.1f">%d</text>' % (y_lat(ms) + 4, ms))
        points = " ".join("%.1f,%.1f" % (x(s), y_lat(latency[s])) for s in sorted(latency))
        svg.append('<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="%s"/>' % points)
        for s in sorted(latency):
            svg.append('<circle cx="%.1f" cy="%.1f" r="2.5" fill="#1565c0"><title>slot %d: %d ms</title></circle>' % (x(s), y_lat(latency[s]), s, latency[s]))
        base = top + lat_h + 40 + bar_h
        most = max([1] + list(included.values()) + list(failed.values()))
        bar_w = max(1.0, plot_w / span / 2 - 1)
        svg.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>' % (left, base, left + plot_w, base))
        svg.append('<text x="5" y="%d">%d</text>' % (base - bar_h + 4, most))
        for s in slots:
            for offset, n, colour, what in ((-bar_w, included.get(s, 0), "#2e7d32", "included"), (0, failed.get(s, 0), "#c62828", "failed")):
                if n:
                    h = n * bar_h / most
                    note = what + (" (" + ", ".join(sorted(reasons.get(s, ()))) + ")" if what == "failed" else "")
                    svg.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>slot %d: %d %s</title></rect>' % (x(s) + offset, base - h, bar_w, h, colour, s, n, note))
        step = max(1, span // 16)
        for s in range(first, last + 1, step):
            svg.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (x(s), base + 14, s))
        svg.append('<text x="%d" y="%d">slot</text>' % (left + plot_w // 2, base + 28))
        svg.append('<text x="5" y="%d" fill="#1565c0">ms</text>' % (top - 6))
        svg.append('<text x="5" y="%d">attestations</text>' % (base - bar_h - 8))
        svg.append('<text x="%d" y="%d" fill="#2e7d32">included</text><text x="%d" y="%d" fill="#c62828">failed</text>' % (left, base + 28, left + 60, base + 28))
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")
    print("per-slot plot: %s (%d slots, %d attestations included, %d failed)" % (path, len(slots), sum(included.values()), sum(failed.values())))


if __name__ == "__main__":
    main()
