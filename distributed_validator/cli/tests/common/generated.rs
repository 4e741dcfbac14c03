//! Validator API requests generated from the shapes of the routes the
//! middleware handles (and a few it forwards), mutated, with random
//! queries, path segments, methods and headers, and the checks every
//! answer must pass: prompt, small, in the Beacon API's error shape when it
//! is an error, never a 500 (a caught panic), nothing panicking in the test
//! process (the simulated chain the node forwards to included).

use dv_types::{Root, SignatureBytes};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The node's resident memory and the size of its log.
pub struct Usage {
    pub rss_kb: u64,
    pub log_bytes: u64,
}

impl Usage {
    pub fn of(pid: u32, log: &std::path::Path) -> Self {
        let rss_kb = super::rss_kb(pid);
        assert!(rss_kb > 0, "no VmRSS for process {pid}");
        Self {
            rss_kb,
            log_bytes: std::fs::metadata(log).unwrap().len(),
        }
    }
}

/// A small deterministic generator (xorshift64*), seeded per run and
/// printed, so a failing request can be replayed with `DV_API_FUZZ_SEED`.
pub struct Gen(pub u64);

impl Gen {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn hex(&mut self, bytes: usize) -> String {
        let raw: Vec<u8> = (0..bytes).map(|_| self.next() as u8).collect();
        format!("0x{}", hex::encode(raw))
    }

    /// A number as the Beacon API writes it, or something that is not one.
    fn number(&mut self, index: u64) -> Value {
        match self.below(9) {
            0 => json!(index.to_string()),
            1 => json!((self.next() % 16).to_string()),
            2 => json!(u64::MAX.to_string()),
            3 => json!("18446744073709551616"),
            4 => json!("-1"),
            5 => json!(self.next() % 1000),
            6 => json!("0x10"),
            7 => json!(""),
            _ => self.value(2),
        }
    }

    /// A signature-like value: the right length of random bytes (rarely a
    /// point), the infinity, a wrong length, or not hex.
    fn signature(&mut self) -> Value {
        match self.below(5) {
            0 | 1 => json!(self.hex(96)),
            2 => json!(SignatureBytes::infinity()),
            3 => {
                let n = self.below(200);
                json!(self.hex(n))
            }
            _ => self.value(2),
        }
    }

    fn root(&mut self) -> Value {
        match self.below(4) {
            0 => json!(Root::ZERO),
            1 | 2 => json!(self.hex(32)),
            _ => {
                let n = self.below(64);
                json!(self.hex(n))
            }
        }
    }

    /// Any JSON value, nested at most `depth` deep.
    fn value(&mut self, depth: usize) -> Value {
        match self.below(if depth == 0 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.next() as i64),
            3 => {
                let n = self.below(8);
                json!(self.hex(n))
            }
            4 => json!("\u{0}\u{feff}\u{1F600}"),
            5 => (0..self.below(4)).map(|_| self.value(depth - 1)).collect(),
            _ => {
                let mut object = serde_json::Map::new();
                for _ in 0..self.below(4) {
                    let key = self
                        .pick(&["message", "data", "signature", "slot", "x"])
                        .to_string();
                    object.insert(key, self.value(depth - 1));
                }
                Value::Object(object)
            }
        }
    }

    /// `value` with one leaf replaced, one key dropped or one key added, or as it is.
    fn mutate(&mut self, mut value: Value) -> Value {
        /// The `n`-th leaf of `v` (depth first).
        fn nth_leaf<'a>(v: &'a mut Value, n: &mut usize) -> Option<&'a mut Value> {
            match v {
                Value::Object(m) => m.values_mut().find_map(|c| nth_leaf(c, n)),
                Value::Array(a) => a.iter_mut().find_map(|c| nth_leaf(c, n)),
                leaf if *n == 0 => Some(leaf),
                _ => {
                    *n -= 1;
                    None
                }
            }
        }
        match self.below(4) {
            0 => {
                let mut n = self.below(16);
                let replacement = self.value(2);
                if let Some(leaf) = nth_leaf(&mut value, &mut n) {
                    *leaf = replacement;
                }
            }
            1 => {
                if let Some(m) = value.as_object_mut() {
                    if let Some(key) = m.keys().nth(self.below(m.len().max(1))).cloned() {
                        m.remove(&key);
                    }
                }
            }
            2 => {
                if let Some(m) = value.as_object_mut() {
                    m.insert("unexpected".into(), self.value(1));
                }
            }
            _ => {}
        }
        value
    }

    /// A body for a route: its own shape (mutated), a list of it, nesting
    /// deeper than any parser should follow, a truncated or non-UTF-8
    /// text, or none.
    fn body(&mut self, shape: Value, list: bool) -> Vec<u8> {
        let item = self.mutate(shape);
        let value = if list && self.below(5) != 0 {
            let n = self.below(4);
            (0..=n).map(|_| self.mutate(item.clone())).collect()
        } else {
            item
        };
        let text = value.to_string().into_bytes();
        match self.below(10) {
            0 => {
                let cut = self.below(text.len().max(1));
                text[..cut].to_vec()
            }
            1 => format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            2 => vec![0xff, 0xfe, b'[', 0xc3],
            3 => Vec::new(),
            _ => text,
        }
    }
}

impl Gen {
    /// Seeded from `DV_API_FUZZ_SEED` if set, else from the clock (printed).
    pub fn from_env() -> Self {
        let seed = std::env::var("DV_API_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| dv_integration::server::now_ms() | 1);
        eprintln!("generated validator API requests: DV_API_FUZZ_SEED={seed}");
        Gen(seed)
    }
}

/// Counts panics anywhere in this process from the first call on.
pub fn panics() -> &'static AtomicUsize {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default_hook(info);
        }));
    });
    &PANICS
}

/// One generated request, ready to send.
pub struct Generated {
    method: reqwest::Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Generated {
    /// Sends it to `base` and checks the answer; `true` if it was refused
    /// (4xx/5xx). Panics, naming the request, if a check fails.
    pub async fn send_and_check(self, http: &reqwest::Client, base: &str, limit: Duration) -> bool {
        let described = format!(
            "{} {} {:?} {}",
            self.method,
            self.path,
            self.headers,
            String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
        );
        let mut request = http
            .request(self.method, format!("{base}{}", self.path))
            .body(self.body);
        for (name, value) in self.headers {
            request = request.header(name, value);
        }
        let started = std::time::Instant::now();
        let (status, bytes) = match request.send().await {
            Ok(r) => (
                r.status().as_u16(),
                r.bytes().await.unwrap_or_default().to_vec(),
            ),
            Err(e) => (0, e.to_string().into_bytes()),
        };
        let took = started.elapsed();
        let context = || {
            format!(
                "{described} -> {status} {}",
                String::from_utf8_lossy(&bytes)
            )
        };
        assert!(status != 0, "no answer: {}", context());
        assert!(status != 500, "a handler failed: {}", context());
        assert!(took < limit, "answered after {took:?}: {}", context());
        assert!(
            bytes.len() < 64 * 1024,
            "an answer of {} bytes: {}",
            bytes.len(),
            context()
        );
        let refused = status >= 400;
        if refused {
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            assert!(
                body["code"] == json!(status)
                    && body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "not the Beacon API's error shape: {}",
                context()
            );
        }
        assert_eq!(
            panics().load(Ordering::SeqCst),
            0,
            "something in the test process panicked (see the output above), after {}",
            context()
        );
        refused
    }
}

/// One generated request.
/// `index` is a validator of the cluster, so that some requests get past
/// the first checks.
pub fn generate(gen: &mut Gen, index: u64) -> Generated {
    use reqwest::Method;
    let checkpoint = |gen: &mut Gen| json!({"epoch": gen.number(0), "root": gen.root()});
    let data = |gen: &mut Gen| {
        json!({"slot": gen.number(index), "index": gen.number(0), "beacon_block_root": gen.root(),
               "source": checkpoint(gen), "target": checkpoint(gen)})
    };
    let (method, path, body): (Method, String, Option<(Value, bool)>) = match gen.below(16) {
        0 => (
            Method::GET,
            "/eth/v1/validator/attestation_data".into(),
            None,
        ),
        1 => (
            Method::GET,
            "/eth/v2/validator/aggregate_attestation".into(),
            None,
        ),
        2 => (
            Method::GET,
            "/eth/v1/validator/aggregate_attestation".into(),
            None,
        ),
        3 => (
            Method::GET,
            "/eth/v1/validator/sync_committee_contribution".into(),
            None,
        ),
        4 => {
            let segment = match gen.below(4) {
                0 => index.to_string(),
                1 => u64::MAX.to_string(),
                2 => "%F0%9F%98%80".into(),
                _ => (gen.next() % 100).to_string(),
            };
            (
                Method::GET,
                format!("/eth/v3/validator/blocks/{segment}"),
                None,
            )
        }
        5 => {
            let attestation = json!({"committee_index": gen.number(0), "attester_index": gen.number(index),
                "aggregation_bits": gen.hex(1), "data": data(gen), "signature": gen.signature()});
            let path = gen.pick(&[
                "/eth/v1/beacon/pool/attestations",
                "/eth/v2/beacon/pool/attestations",
            ]);
            (Method::POST, path.to_string(), Some((attestation, true)))
        }
        6 => {
            let block = json!({"message": {"slot": gen.number(index), "proposer_index": gen.number(index),
                "parent_root": gen.root(), "state_root": gen.root(), "body": gen.value(3)},
                "signature": gen.signature()});
            let block = if gen.below(2) == 0 {
                json!({"signed_block": block, "kzg_proofs": [], "blobs": []})
            } else {
                block
            };
            let path = gen.pick(&[
                "/eth/v1/beacon/blocks",
                "/eth/v2/beacon/blocks",
                "/eth/v1/beacon/blinded_blocks",
                "/eth/v2/beacon/blinded_blocks",
            ]);
            (Method::POST, path.to_string(), Some((block, false)))
        }
        7 => {
            let selection = json!({"validator_index": gen.number(index), "slot": gen.number(index),
                "selection_proof": gen.signature()});
            (
                Method::POST,
                "/eth/v1/validator/beacon_committee_selections".into(),
                Some((selection, true)),
            )
        }
        8 => {
            let selection = json!({"validator_index": gen.number(index), "slot": gen.number(index),
                "subcommittee_index": gen.number(0), "selection_proof": gen.signature()});
            (
                Method::POST,
                "/eth/v1/validator/sync_committee_selections".into(),
                Some((selection, true)),
            )
        }
        9 => {
            let exit = json!({"message": {"epoch": gen.number(0), "validator_index": gen.number(index)},
                "signature": gen.signature()});
            (
                Method::POST,
                "/eth/v1/beacon/pool/voluntary_exits".into(),
                Some((exit, false)),
            )
        }
        10 => {
            let aggregate = json!({"message": {"aggregator_index": gen.number(index),
                "aggregate": {"aggregation_bits": gen.hex(2), "data": data(gen), "signature": gen.signature(),
                    "committee_bits": gen.hex(8)},
                "selection_proof": gen.signature()}, "signature": gen.signature()});
            let path = gen.pick(&[
                "/eth/v1/validator/aggregate_and_proofs",
                "/eth/v2/validator/aggregate_and_proofs",
            ]);
            (Method::POST, path.to_string(), Some((aggregate, true)))
        }
        11 => {
            let message = json!({"slot": gen.number(index), "beacon_block_root": gen.root(),
                "validator_index": gen.number(index), "signature": gen.signature()});
            (
                Method::POST,
                "/eth/v1/beacon/pool/sync_committees".into(),
                Some((message, true)),
            )
        }
        12 => {
            let contribution = json!({"message": {"aggregator_index": gen.number(index),
                "contribution": {"slot": gen.number(index), "beacon_block_root": gen.root(),
                    "subcommittee_index": gen.number(0), "aggregation_bits": gen.hex(2), "signature": gen.signature()},
                "selection_proof": gen.signature()}, "signature": gen.signature()});
            (
                Method::POST,
                "/eth/v1/validator/contribution_and_proofs".into(),
                Some((contribution, true)),
            )
        }
        13 => {
            let registration = json!({"message": {"fee_recipient": gen.hex(20), "gas_limit": gen.number(0),
                "timestamp": gen.number(0), "pubkey": gen.hex(48)}, "signature": gen.signature()});
            (
                Method::POST,
                "/eth/v1/validator/register_validator".into(),
                Some((registration, true)),
            )
        }
        14 => (Method::GET, "/eth/v1/beacon/blocks/head/root".into(), None),
        _ => {
            // Another method on a handled path, or a path nobody serves.
            let method = gen
                .pick(&[Method::PUT, Method::DELETE, Method::PATCH, Method::GET])
                .clone();
            let path = gen.pick(&[
                "/eth/v1/beacon/pool/voluntary_exits",
                "/eth/v2/beacon/pool/attestations",
                "/eth/v1/validator/register_validator",
                "/eth/v1/nothing/here",
                "/eth/v1/validator/duties/attester/x",
            ]);
            (method, path.to_string(), None)
        }
    };
    let mut query = Vec::new();
    if body.is_none() {
        for _ in 0..gen.below(5) {
            let key = gen.pick(&[
                "slot",
                "committee_index",
                "subcommittee_index",
                "beacon_block_root",
                "attestation_data_root",
                "randao_reveal",
                "graffiti",
                "skip_randao_verification",
                "builder_boost_factor",
                "x",
            ]);
            let value = match gen.below(6) {
                0 => index.to_string(),
                1 => (gen.next() % 20).to_string(),
                2 => u64::MAX.to_string(),
                3 => gen.hex(32),
                4 => gen.hex(96),
                _ => "%00%FF".into(),
            };
            query.push(format!("{key}={value}"));
        }
    }
    let path = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let mut headers = Vec::new();
    if gen.below(3) != 0 {
        headers.push((
            "Eth-Consensus-Version",
            gen.pick(&["fulu", "deneb", "electra", "phase9", ""])
                .to_string(),
        ));
    }
    let body = match body {
        Some((shape, list)) => {
            headers.push((
                "Content-Type",
                gen.pick(&[
                    "application/json",
                    "application/json",
                    "application/octet-stream",
                    "text/plain",
                ])
                .to_string(),
            ));
            gen.body(shape, list)
        }
        None => Vec::new(),
    };
    if gen.below(4) == 0 {
        headers.push((
            "Accept",
            gen.pick(&["application/octet-stream", "application/json", "*/*"])
                .to_string(),
        ));
    }
    Generated {
        method,
        path,
        headers,
        body,
    }
}
