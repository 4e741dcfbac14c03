//! Real network partitions for the fault tests: one network namespace per
//! node, each joined by a veth pair to a bridge the test makes (the chain
//! listens on the bridge's address). A partition is a set of blackhole
//! routes inside the namespaces (packets between the groups are dropped,
//! while every node still reaches the chain); healing removes them. All of
//! it is removed again when the value is dropped.

use std::process::Command;

pub struct Netns {
    prefix: String,
    nodes: usize,
    subnet: u8,
    blackholes: Vec<(usize, usize)>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Namespaces for `nodes` nodes, or why they cannot be made here
    /// (not root, no iproute2, no namespace support).
    pub fn create(nodes: usize) -> Result<Netns, String> {
        let id = std::process::id() % 10_000;
        let net = Netns {
            prefix: format!("dv{id}"),
            nodes,
            subnet: (id % 200) as u8 + 20,
            blackholes: Vec::new(),
        };
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.host_ip()),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..nodes {
            let ns = net.namespace(i);
            let (outside, inside) = (format!("{}v{i}", net.prefix), format!("{}p{i}", net.prefix));
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ])?;
            ip(&["link", "set", &inside, "netns", &ns])?;
            ip(&["link", "set", &outside, "master", &bridge])?;
            ip(&["link", "set", &outside, "up"])?;
            let addr = format!("{}/24", net.node_ip(i));
            ip(&[
                "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", &inside,
            ])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", &inside, "up"])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    pub fn namespace(&self, node: usize) -> String {
        format!("{}n{node}", self.prefix)
    }

    /// The bridge's address, where the chain listens.
    pub fn host_ip(&self) -> String {
        format!("10.{}.0.1", self.subnet)
    }

    pub fn node_ip(&self, node: usize) -> String {
        format!("10.{}.0.{}", self.subnet, 10 + node)
    }

    /// Cuts every node of one group off from every node of the others.
    pub fn partition(&mut self, groups: &[&[usize]]) -> Result<(), String> {
        for (g, group) in groups.iter().enumerate() {
            for other in groups
                .iter()
                .enumerate()
                .filter(|(h, _)| *h != g)
                .flat_map(|(_, o)| o.iter())
            {
                for node in group.iter() {
                    let ns = self.namespace(*node);
                    let to = format!("{}/32", self.node_ip(*other));
                    ip(&["netns", "exec", &ns, "ip", "route", "add", "blackhole", &to])?;
                    self.blackholes.push((*node, *other));
                }
            }
        }
        Ok(())
    }

    /// Removes every partition.
    pub fn heal(&mut self) -> Result<(), String> {
        for (node, other) in std::mem::take(&mut self.blackholes) {
            let ns = self.namespace(node);
            let to = format!("{}/32", self.node_ip(other));
            ip(&["netns", "exec", &ns, "ip", "route", "del", "blackhole", &to])?;
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            let _ = ip(&["netns", "del", &self.namespace(i)]);
            let _ = ip(&["link", "del", &format!("{}v{i}", self.prefix)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}
