//! Middleware mode (`dvnode run --validator-api ADDR`): the node serves the
//! Beacon API to a stock validator client run with `--distributed`, which
//! holds this node's key shares, and sits between it and the beacon node.
//!
//! The client's duty data comes from the cluster's decisions (the same
//! consensus, slashing check and exchange as the built-in validator, through
//! [`DvValidatorStore`]); its signatures are partials that this node verifies
//! against its public share, checks in its own slashing database, exchanges
//! and combines; the combined messages go to the beacon node. What the
//! middleware does not handle is forwarded unchanged, apart from the share ↔
//! validator key mapping ([`identity`]).

mod aggregate;
mod attest;
mod encoding;
pub mod identity;
mod propose;
mod proxy;
#[doc(hidden)]
pub use propose::parse_submitted_block;
mod register;
mod select;
mod sync;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use beacon_client::BeaconNodes;
use dv_node::duty::{Duty, DutyType, MAX_COMMITTEES_PER_SLOT};
use dv_node::exits::PendingExits;
use dv_node::metrics::Metrics;
use dv_node::parsig::{not_our_partial, OwnShares, Partial};
use dv_node::scheduler::{Scheduler, SlotClock};
use dv_node::tracker::{InclusionChecker, Reason};
use dv_node::validator_store::DvValidatorStore;
use dv_types::{ForkName, PublicKeyBytes, Root, SignatureBytes, Slot};
use identity::Identity;
use proxy::Upstream;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// An error answered to the validator client, in the Beacon API's shape.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    failures: Vec<(usize, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            failures: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A batch with some refused items (the accepted ones were processed).
    /// The answer and the log carry the first [`MAX_FAILURES_SHOWN`] failures
    /// and the count of all, so a hostile batch cannot amplify itself.
    pub fn batch(what: &str, mut failures: Vec<(usize, String)>) -> Self {
        let total = failures.len();
        failures.truncate(MAX_FAILURES_SHOWN);
        let message = if total > MAX_FAILURES_SHOWN {
            format!("{total} {what} were refused (the first {MAX_FAILURES_SHOWN} are listed)")
        } else {
            format!("some {what} were refused")
        };
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
            failures,
        }
    }
}

/// Failures listed per refused batch (answer and log).
pub const MAX_FAILURES_SHOWN: usize = 16;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::warn!(status = self.status.as_u16(), failures = ?self.failures, "validator client request refused: {}", self.message);
        let mut body = json!({"code": self.status.as_u16(), "message": self.message});
        if !self.failures.is_empty() {
            body["failures"] = self
                .failures
                .iter()
                .map(|(index, message)| json!({"index": index, "message": message}))
                .collect();
        }
        (self.status, Json(body)).into_response()
    }
}

/// Everything the handlers share.
pub struct Middleware {
    pub store: DvValidatorStore,
    pub beacon: BeaconNodes,
    pub scheduler: Scheduler,
    pub clock: SlotClock,
    pub metrics: Arc<Metrics>,
    /// This node's public shares (what the client's partials are checked against).
    pub own: OwnShares,
    /// The node's pending voluntary exits (the client's exits go there).
    pub exits: PendingExits,
    /// Blocks use the minimal preset's limits (else mainnet's).
    pub minimal: bool,
    /// Builder registrations signed into the cluster lock, by validator.
    pub registrations: HashMap<PublicKeyBytes, dv_types::SignedValidatorRegistration>,
    pub inclusion: Arc<InclusionChecker>,
    /// The client's last verified registration partial per validator (its
    /// signing root and signature): a client sends the same signed
    /// registrations every epoch, as Lighthouse's does, and bytes equal to
    /// ones that verified need no second pairing check.
    verified_registrations: std::sync::Mutex<HashMap<PublicKeyBytes, (Root, SignatureBytes)>>,
    identity: Identity,
    upstream: Upstream,
}

/// What [`Middleware::new`] is built from.
pub struct MiddlewareConfig {
    pub store: DvValidatorStore,
    pub beacon: BeaconNodes,
    /// The same beacon nodes, for requests forwarded as they are.
    pub beacon_urls: Vec<String>,
    pub scheduler: Scheduler,
    pub clock: SlotClock,
    pub metrics: Arc<Metrics>,
    pub own: OwnShares,
    pub exits: PendingExits,
    /// Builder registrations signed into the cluster lock, by validator.
    pub registrations: HashMap<PublicKeyBytes, dv_types::SignedValidatorRegistration>,
    /// Looks for what the beacon node accepted in the next blocks.
    pub inclusion: Arc<InclusionChecker>,
}

impl Middleware {
    pub fn new(cfg: MiddlewareConfig) -> Result<Self, String> {
        let pairs: Vec<(PublicKeyBytes, PublicKeyBytes)> = cfg
            .own
            .keys
            .keys()
            .filter_map(|v| {
                let share = cfg.own.share_of(v).ok()?;
                Some((*v, PublicKeyBytes(share.to_bytes())))
            })
            .collect();
        Ok(Self {
            identity: Identity::new(pairs),
            upstream: Upstream::new(&cfg.beacon_urls)?,
            minimal: cfg.store.spec().preset_base == "minimal",
            store: cfg.store,
            beacon: cfg.beacon,
            scheduler: cfg.scheduler,
            clock: cfg.clock,
            metrics: cfg.metrics,
            own: cfg.own,
            exits: cfg.exits,
            registrations: cfg.registrations,
            inclusion: cfg.inclusion,
            verified_registrations: Default::default(),
        })
    }

    /// Checks a partial signature from the client against this node's share
    /// of `validator` (rule 4: nothing unverified is used).
    pub fn verify_partial(
        &self,
        validator: &PublicKeyBytes,
        root: Root,
        signature: &SignatureBytes,
    ) -> Result<Partial, String> {
        self.own.verify(validator, root, signature)
    }

    /// Rule 4 for a request's parsed partials: the `items` (with their
    /// positions in the request) whose partial, over its signing root
    /// (`partial_of`), verifies against this node's share, in one batch
    /// check; the others go to `failures`, named.
    pub(crate) fn keep_verified<T>(
        &self,
        items: Vec<(usize, T)>,
        partial_of: impl Fn(&T) -> (Root, Partial),
        failures: &mut Vec<(usize, String)>,
    ) -> Vec<(usize, T)> {
        let checks: Vec<(Root, Partial)> = items.iter().map(|(_, t)| partial_of(t)).collect();
        let valid = dv_node::cpu::cpu_bound(|| self.own.verify_all(&checks));
        let mut kept = Vec::with_capacity(items.len());
        for (((position, item), (_, partial)), ok) in items.into_iter().zip(checks).zip(valid) {
            if ok {
                kept.push((position, item));
            } else {
                failures.push((position, not_our_partial(&partial.validator)));
            }
        }
        kept
    }

    /// The client's signature as this node's partial for `validator`, not
    /// verified yet (see [`Sorted::verified_groups`]).
    pub fn parse_partial(
        &self,
        validator: &PublicKeyBytes,
        signature: &SignatureBytes,
    ) -> Result<Partial, String> {
        self.own.parse(validator, signature)
    }

    /// Checks that `proof` is `validator`'s selection proof over `root`
    /// (the signature this node combined for `duty`, else verified against
    /// the validator key) and that it selects the validator: the first 8
    /// bytes of its hash, little endian, divisible by `modulo`. A beacon node
    /// refuses an aggregate or contribution whose proof fails either check.
    pub(crate) async fn check_selection_proof(
        &self,
        duty: Duty,
        validator: &PublicKeyBytes,
        root: Root,
        proof: &SignatureBytes,
        modulo: u64,
    ) -> Result<(), String> {
        let combined_here = self
            .store
            .workflow()
            .combined(duty, *validator, root)
            .await
            .is_some_and(|s| s.to_bytes() == proof.0);
        let valid = combined_here || {
            let keys = self.own.keys.get(validator).ok_or("internal: no keys")?;
            dv_crypto::Signature::from_bytes(&proof.0)
                .is_ok_and(|sig| keys.key.verify(root.as_slice(), &sig))
        };
        // Refusals name the key the client knows: this node's share key.
        let share = || {
            self.own
                .share_of(validator)
                .map(|k| PublicKeyBytes(k.to_bytes()).to_string())
                .unwrap_or_else(|_| validator.to_string())
        };
        if !valid {
            let endpoint = match duty.kind {
                DutyType::SyncSelection => "sync_committee_selections",
                _ => "beacon_committee_selections",
            };
            // A client that never asks the selections endpoint puts its own
            // partial in its messages; partials over different messages
            // (each operator's has its own proof in it) can never combine.
            let cause = if self.own.verify(validator, root, proof).is_ok() {
                format!(
                    "it is this operator's partial selection proof, not the cluster's combined one: \
                     the validator client must get the combined proof from POST /eth/v1/validator/{endpoint} \
                     (as clients run with --distributed do) and sign its message over that"
                )
            } else {
                "it is neither the cluster's combined proof nor this operator's partial".to_string()
            };
            return Err(format!(
                "the selection proof of validator {} is refused: {cause}",
                share()
            ));
        }
        if !dv_node::aggregation::selects(proof, modulo) {
            return Err(format!(
                "validator {} is not selected as an aggregator at slot {}",
                share(),
                duty.slot
            ));
        }
        Ok(())
    }

    /// The beacon node's answer to the client's own request, keys mapped.
    pub(crate) async fn forward(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = match axum::body::to_bytes(body, proxy::MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) => return ApiError::bad_request(format!("request body: {e}")).into_response(),
        };
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        self.upstream
            .forward(&self.identity, parts.method, path, &parts.headers, body)
            .await
    }

    /// Sends a JSON body of the middleware's own to the beacon node (e.g. the
    /// part of a batch that belongs to validators outside the cluster).
    async fn forward_json(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: serde_json::Value,
    ) -> Response {
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        // The body sent is JSON, whatever the client sent.
        let mut headers = headers.clone();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.remove(header::CONTENT_LENGTH);
        self.upstream
            .forward(
                &self.identity,
                axum::http::Method::POST,
                path,
                &headers,
                bytes,
            )
            .await
    }
}

/// A signed message of the client waiting for the peers' partials: its JSON
/// gets the combined signature of the partial's validator.
pub(crate) struct ToCombine {
    pub partial: Partial,
    pub json: serde_json::Value,
}

impl Middleware {
    /// Posts a JSON list to the beacon node with the fork header.
    async fn post_versioned(
        &self,
        path: &str,
        fork: ForkName,
        items: Vec<serde_json::Value>,
    ) -> Result<(), String> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            "Eth-Consensus-Version",
            HeaderValue::from_str(fork.as_str()).map_err(|e| e.to_string())?,
        );
        let body = Bytes::from(serde_json::to_vec(&items).unwrap_or_default());
        let response = self
            .upstream
            .send(axum::http::Method::POST, path, &headers, body)
            .await
            .map_err(|e| e.message)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(format!("beacon node: HTTP {status}: {text}"))
    }

    /// Exchanges each group's partials (over its root, for its duty), puts
    /// the combined signatures into the client's messages and posts those
    /// to `path`: groups that complete together go out in one request, a
    /// group that waits for late partials holds up no other. One outcome
    /// line per group.
    pub(crate) async fn combine_and_post(
        self: Arc<Self>,
        groups: Vec<((Duty, Root), Vec<ToCombine>)>,
        path: &'static str,
        what: &'static str,
    ) {
        use futures::stream::{FuturesUnordered, StreamExt};
        let mut pending: FuturesUnordered<_> = groups
            .into_iter()
            .map(|((duty, root), items)| self.combine_group(duty, root, items))
            .collect();
        while let Some(first) = pending.next().await {
            let mut done: Vec<(Duty, Vec<serde_json::Value>)> = first.into_iter().collect();
            while let Ok(Some(next)) =
                tokio::time::timeout(std::time::Duration::from_millis(20), pending.next()).await
            {
                done.extend(next);
            }
            self.post_combined(&done, path, what).await;
        }
    }

    async fn post_combined(
        &self,
        done: &[(Duty, Vec<serde_json::Value>)],
        path: &'static str,
        what: &'static str,
    ) {
        let Some(first) = done.first().map(|(duty, _)| *duty) else {
            return;
        };
        let out: Vec<serde_json::Value> = done.iter().flat_map(|(_, o)| o.clone()).collect();
        let fork = self.store.spec().fork_at_slot(first.slot);
        let posted = self.post_versioned(path, fork, out).await;
        for (duty, items) in done {
            let (slot, name) = (duty.slot, duty.kind.name());
            match &posted {
                Ok(()) => {
                    self.track_inclusion(duty.kind, slot, items);
                    self.metrics.duty_ok(
                        slot,
                        name,
                        self.clock.slot_start_ms(slot),
                        what,
                        items.len(),
                    )
                }
                Err(e) => self.metrics.duty_failed(
                    slot,
                    name,
                    Reason::BroadcastFailed,
                    items.len(),
                    format!("beacon node error: {e}"),
                ),
            }
        }
    }

    /// Hands what the beacon node accepted to the inclusion checker: the
    /// attestations (`SingleAttestation`s, which name their validator) and
    /// sync committee messages among `items`.
    fn track_inclusion(&self, kind: DutyType, slot: Slot, items: &[serde_json::Value]) {
        let index = |v: &serde_json::Value| v.as_str()?.parse::<u64>().ok();
        match kind {
            DutyType::Attester => {
                let attested: Vec<(u64, dv_types::AttestationData)> = items
                    .iter()
                    .filter_map(|i| {
                        let data = serde_json::from_value(i["data"].clone()).ok()?;
                        Some((index(&i["attester_index"])?, data))
                    })
                    .collect();
                self.inclusion.attestations_submitted(&attested);
            }
            DutyType::SyncMessage => {
                let indices: Vec<u64> = items
                    .iter()
                    .filter_map(|i| index(&i["validator_index"]))
                    .collect();
                self.inclusion.sync_messages_submitted(slot, &indices);
            }
            _ => {}
        }
    }

    /// One group's combined messages; `None` (with an outcome line) if none combined.
    async fn combine_group(
        &self,
        duty: Duty,
        root: Root,
        items: Vec<ToCombine>,
    ) -> Option<(Duty, Vec<serde_json::Value>)> {
        let name = duty.kind.name();
        let slot = duty.slot;
        let validators: Vec<PublicKeyBytes> = items.iter().map(|i| i.partial.validator).collect();
        let partials: Vec<Partial> = items.iter().map(|i| i.partial).collect();
        let deadline = self.clock.slot_start(slot.saturating_add(2));
        let combined = match self
            .store
            .exchange_partials(duty, root, partials, &validators, deadline)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                self.metrics
                    .duty_failed(slot, name, Reason::of(&e), validators.len(), e);
                return None;
            }
        };
        if combined.len() < validators.len() {
            self.metrics.duty_failed(
                slot,
                name,
                Reason::InsufficientPartials,
                validators.len() - combined.len(),
                format!(
                    "insufficient partial signatures: {} of {} signatures combined",
                    combined.len(),
                    validators.len()
                ),
            );
        }
        let out: Vec<serde_json::Value> = items
            .into_iter()
            .filter_map(|mut i| {
                let signature = combined.get(&i.partial.validator)?;
                // (An object: its fields were read when it was checked.)
                i.json
                    .as_object_mut()?
                    .insert("signature".into(), json!(signature));
                Some(i.json)
            })
            .collect();
        (!out.is_empty()).then_some((duty, out))
    }
}

/// Items of the client's batch sorted: the cluster's (to verify, then
/// group for combination), the others (forwarded as they are), the refused.
#[derive(Default)]
pub(crate) struct Sorted {
    /// Position in the batch, duty, signing root, the item.
    pending: Vec<(usize, Duty, Root, ToCombine)>,
    pub outsiders: Vec<serde_json::Value>,
    pub failures: Vec<(usize, String)>,
}

/// What checking one item of a client's batch found: its duty, signing
/// root and partial (verified with the batch); `None` for a validator
/// outside the cluster.
pub(crate) type Checked = Result<Option<(Duty, Root, Partial)>, String>;

impl Sorted {
    /// Files the item at `position` by what checking it found.
    pub fn add(&mut self, position: usize, json: serde_json::Value, checked: Checked) {
        match checked {
            Ok(Some((duty, root, partial))) => {
                self.pending
                    .push((position, duty, root, ToCombine { partial, json }))
            }
            Ok(None) => self.outsiders.push(json),
            Err(e) => self.failures.push((position, e)),
        }
    }

    /// Verifies the cluster's items against this node's shares in one batch
    /// (each on its own only if the batch fails, to name the bad ones) and
    /// groups the good ones by duty and signing root.
    fn verified_groups(&mut self, mw: &Middleware) -> HashMap<(Duty, Root), Vec<ToCombine>> {
        let mut keyed = Vec::with_capacity(self.pending.len());
        for (position, duty, root, item) in std::mem::take(&mut self.pending) {
            match mw.own.share_of(&item.partial.validator) {
                Ok(_) => keyed.push((position, duty, root, item)),
                Err(e) => self.failures.push((position, e)),
            }
        }
        let checked: Vec<(Root, Partial)> = keyed
            .iter()
            .map(|(_, _, root, item)| (*root, item.partial))
            .collect();
        let valid = mw.own.verify_all(&checked);
        let mut groups: HashMap<(Duty, Root), Vec<ToCombine>> = HashMap::new();
        for ((position, duty, root, item), valid) in keyed.into_iter().zip(valid) {
            if valid {
                groups.entry((duty, root)).or_default().push(item);
            } else {
                self.failures
                    .push((position, not_our_partial(&item.partial.validator)));
            }
        }
        groups
    }
}

impl Middleware {
    /// Combines the cluster's items and forwards the rest; answers the batch.
    pub(crate) async fn finish_batch(
        self: &Arc<Self>,
        mut sorted: Sorted,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        path: &'static str,
        what: &'static str,
        noun: &str,
    ) -> Result<Response, ApiError> {
        let groups = sorted.verified_groups(self);
        if !groups.is_empty() {
            let groups = groups.into_iter().collect();
            tokio::spawn(Arc::clone(self).combine_and_post(groups, path, what));
        }
        if !sorted.outsiders.is_empty() {
            let response = self
                .forward_json(
                    uri.path(),
                    headers,
                    serde_json::Value::Array(sorted.outsiders),
                )
                .await;
            if !response.status().is_success() {
                return Ok(response);
            }
        }
        if sorted.failures.is_empty() {
            Ok(StatusCode::OK.into_response())
        } else {
            Err(ApiError::batch(noun, sorted.failures))
        }
    }
}

type Shared = State<Arc<Middleware>>;

/// A request body that must be a JSON list of at most `max` items of `T`
/// (of `what`): refused at the first item past `max`, before the rest is
/// read, so a huge batch costs neither memory nor time.
fn bounded_list<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
    max: usize,
) -> Result<Vec<T>, ApiError> {
    use serde::de::{DeserializeSeed, Error, SeqAccess, Visitor};
    struct Bounded<T>(usize, std::marker::PhantomData<T>);
    impl<'de, T: serde::de::DeserializeOwned> Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a JSON list of at most {} items", self.0)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<T>()? {
                if out.len() == self.0 {
                    return Err(A::Error::custom(format!(
                        "more than {} items (the most this node takes in one request)",
                        self.0
                    )));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    impl<'de, T: serde::de::DeserializeOwned> DeserializeSeed<'de> for Bounded<T> {
        type Value = Vec<T>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
            d.deserialize_seq(self)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    Bounded::<T>(max, std::marker::PhantomData)
        .deserialize(&mut de)
        .and_then(|items| de.end().map(|()| items))
        .map_err(|e| ApiError::bad_request(format!("{what}: invalid JSON list: {e}")))
}

impl Middleware {
    /// The most items one batch request may carry: four per validator of
    /// the cluster (a validator has at most one attestation, registration
    /// or sync message per request and a contribution per sync
    /// subcommittee), and never fewer than [`MIN_BATCH_LIMIT`] (the client
    /// may hold other validators, whose items are forwarded).
    pub fn max_batch(&self) -> usize {
        (4 * self.own.keys.len()).max(MIN_BATCH_LIMIT)
    }

    /// A request body that must be a JSON list (of `what`), at most
    /// [`Self::max_batch`] items, on a route the Beacon API gives no SSZ
    /// body (an SSZ one is answered 415).
    fn json_list(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        what: &str,
    ) -> Result<Vec<serde_json::Value>, ApiError> {
        if encoding::is_ssz(headers) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "{what}: this route takes JSON (the Beacon API defines no SSZ body for it)"
                ),
            ));
        }
        bounded_list(body, what, self.max_batch())
    }

    /// A request body that is a list of `T` (of `what`), at most
    /// [`Self::max_batch`] items, in JSON or, where the Beacon API allows
    /// it, in SSZ: SSZ items are decoded and handled in their JSON form,
    /// as the rest of the batch path (and the beacon node) takes them.
    fn batch_items<T: dv_types::ssz::Decode + serde::Serialize>(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        what: &str,
    ) -> Result<Vec<serde_json::Value>, ApiError> {
        if !encoding::is_ssz(headers) {
            return bounded_list(body, what, self.max_batch());
        }
        let invalid = |e: String| ApiError::bad_request(format!("{what}: invalid SSZ list: {e}"));
        let count = encoding::ssz_list_len::<T>(body).map_err(invalid)?;
        if count > self.max_batch() {
            return Err(invalid(format!(
                "{count} items, more than {} (the most this node takes in one request)",
                self.max_batch()
            )));
        }
        let items = <Vec<T> as dv_types::ssz::Decode>::from_ssz_bytes(body)
            .map_err(|e| invalid(format!("{e:?}")))?;
        items
            .iter()
            .map(|item| {
                serde_json::to_value(item).map_err(|e| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{what}: {e}"))
                })
            })
            .collect()
    }

    /// Requests that start a consensus (attestation data, aggregates,
    /// contributions) are answered only near the current slot: from the
    /// previous slot (a client a little late) to the next (a clock a little
    /// fast), and for committees a slot can have. A past slot the cluster
    /// decided is answered from the decided store; anything else is
    /// refused at once, not left to time out.
    pub(crate) async fn check_slot_window(&self, duty: Duty) -> Result<(), ApiError> {
        match duty.kind {
            DutyType::Aggregator { committee } if committee >= MAX_COMMITTEES_PER_SLOT => {
                return Err(ApiError::bad_request(format!(
                    "committee_index {committee}: a slot has at most {MAX_COMMITTEES_PER_SLOT} committees"
                )))
            }
            DutyType::SyncContribution { subcommittee }
                if subcommittee >= self.store.spec().sync_committee_subnet_count =>
            {
                return Err(ApiError::bad_request(format!(
                    "subcommittee_index {subcommittee}: there are {} sync subcommittees",
                    self.store.spec().sync_committee_subnet_count
                )))
            }
            _ => {}
        }
        let current = self.clock.current_slot();
        if duty.slot > current + 1 {
            return Err(ApiError::bad_request(format!(
                "slot {} is more than one slot after the current slot {current}",
                duty.slot
            )));
        }
        if duty.slot.saturating_add(1) < current
            && self.store.workflow().decided(duty).await.is_none()
        {
            return Err(ApiError::bad_request(format!(
                "slot {} has passed (current slot {current}) and the cluster decided no {} for it",
                duty.slot,
                duty.kind.name()
            )));
        }
        Ok(())
    }
}

/// The smallest batch limit (see [`Middleware::max_batch`]).
pub const MIN_BATCH_LIMIT: usize = 1024;

async fn forward(State(mw): Shared, request: Request) -> Response {
    mw.forward(request).await
}

/// The largest JSON batch item this node expects (an Electra aggregate of a
/// full 2,048-member committee is about 1.3 kB): with [`Middleware::max_batch`]
/// items, the body limit of the batch routes.
const MAX_BATCH_ITEM_BYTES: usize = 2048;

/// The body limit of the block routes: the largest legal block, in JSON
/// (hex doubles every byte): a 10 MiB execution payload (EIP-7934's block
/// size limit) and 48 blobs of 128 KiB with their proofs, plus the rest of
/// the block. SSZ bodies are half that.
pub const MAX_BLOCK_BODY_BYTES: usize = 2 * (10 << 20) + 2 * 48 * (128 << 10) + (4 << 20);

/// A route handled here for its method, with a body limit of `limit` bytes;
/// any other method goes to the beacon node (`GET
/// /eth/v2/beacon/pool/attestations` is a real read there).
fn handled(route: MethodRouter<Arc<Middleware>>, limit: usize) -> MethodRouter<Arc<Middleware>> {
    route
        .fallback(forward)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(move |request, next| {
            refuse_oversized(limit, request, next)
        }))
}

/// Request body read and thrown away, at most, to deliver a 413.
const MAX_DRAINED_BYTES: usize = 64 << 20;

/// A body whose declared length is over `limit` is answered 413 in the
/// Beacon API's shape without being kept. The rest of it is read and
/// dropped first (up to [`MAX_DRAINED_BYTES`]), as servers linger before
/// closing: a connection closed on a client still sending loses the answer.
async fn refuse_oversized(
    limit: usize,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let Some(length) = declared.filter(|length| *length > limit) else {
        return next.run(request).await;
    };
    use futures::StreamExt;
    let mut body = request.into_body().into_data_stream();
    let mut drained = 0usize;
    while drained <= MAX_DRAINED_BYTES {
        match body.next().await {
            Some(Ok(chunk)) => drained += chunk.len(),
            _ => break,
        }
    }
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body of {length} bytes is over this route's limit of {limit} bytes"),
    )
    .into_response()
}

/// A block publication route: handled, with the body limit of the largest legal block.
fn block_route(route: MethodRouter<Arc<Middleware>>) -> MethodRouter<Arc<Middleware>> {
    handled(route, MAX_BLOCK_BODY_BYTES)
}

/// Every error answer of the validator API in the Beacon API's shape
/// (`{"code", "message"}`): axum's own refusals (body too large, a bad path
/// segment or query) are plain text, so they are rewritten here.
async fn beacon_api_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut rewritten = ApiError::new(status, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

/// A handler that panics is answered 500 (and logged), never a dropped connection.
async fn catch_panics(request: Request, next: axum::middleware::Next) -> Response {
    use futures::FutureExt;
    let path = request.uri().path().to_string();
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(path, "validator API handler panicked: {what}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error while handling {path}"),
            )
            .into_response()
        }
    }
}

pub fn router(mw: Arc<Middleware>) -> Router {
    let batch_body_limit = mw.max_batch() * MAX_BATCH_ITEM_BYTES;
    let batch = |route| handled(route, batch_body_limit);
    Router::new()
        .route(
            "/eth/v1/validator/attestation_data",
            batch(get(attest::attestation_data)),
        )
        .route(
            "/eth/v1/beacon/pool/attestations",
            batch(post(attest::submit)),
        )
        .route(
            "/eth/v2/beacon/pool/attestations",
            batch(post(attest::submit)),
        )
        .route(
            "/eth/v3/validator/blocks/{slot}",
            batch(get(propose::produce)),
        )
        .route(
            "/eth/v1/beacon/blocks",
            block_route(post(propose::publish_full)),
        )
        .route(
            "/eth/v2/beacon/blocks",
            block_route(post(propose::publish_full)),
        )
        .route(
            "/eth/v1/beacon/blinded_blocks",
            block_route(post(propose::publish_blinded)),
        )
        .route(
            "/eth/v2/beacon/blinded_blocks",
            block_route(post(propose::publish_blinded)),
        )
        .route(
            "/eth/v1/validator/beacon_committee_selections",
            batch(post(select::beacon_committee_selections)),
        )
        .route(
            "/eth/v1/validator/sync_committee_selections",
            batch(post(select::sync_committee_selections)),
        )
        .route(
            "/eth/v1/beacon/pool/voluntary_exits",
            batch(post(select::voluntary_exit)),
        )
        .route(
            "/eth/v1/validator/aggregate_and_proofs",
            batch(post(aggregate::submit)),
        )
        .route(
            "/eth/v2/validator/aggregate_and_proofs",
            batch(post(aggregate::submit)),
        )
        .route(
            "/eth/v2/validator/aggregate_attestation",
            batch(get(aggregate::aggregate_attestation)),
        )
        .route(
            "/eth/v1/validator/aggregate_attestation",
            batch(get(aggregate::aggregate_attestation_v1)),
        )
        .route(
            "/eth/v1/beacon/pool/sync_committees",
            batch(post(sync::submit_messages)),
        )
        .route(
            "/eth/v1/validator/contribution_and_proofs",
            batch(post(sync::submit_contributions)),
        )
        .route(
            "/eth/v1/validator/register_validator",
            batch(post(register::register_validators)),
        )
        .route(
            "/eth/v1/validator/sync_committee_contribution",
            batch(get(sync::contribution)),
        )
        .route(
            "/eth/v1/beacon/blocks/head/root",
            batch(get(sync::head_root)),
        )
        .fallback(forward)
        .layer(axum::middleware::map_response(beacon_api_errors))
        .layer(axum::middleware::from_fn(catch_panics))
        .with_state(mw)
}

/// Serves the validator API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, mw: Arc<Middleware>) {
    if let Err(e) = axum::serve(listener, router(mw)).await {
        tracing::error!("validator API stopped: {e}");
    }
}
