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
pub mod identity;
mod propose;
mod proxy;
mod select;

use crate::duty::Duty;
use crate::metrics::Metrics;
use crate::parsig::{Partial, ValidatorKeys};
use crate::scheduler::{Scheduler, SlotClock};
use crate::validator_store::DvValidatorStore;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use beacon_client::BeaconNodes;
use dv_crypto::PartialSignature;
use dv_types::{ForkName, PublicKeyBytes, Root, SignatureBytes};
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
    pub fn batch(what: &str, failures: Vec<(usize, String)>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("some {what} were refused"),
            failures,
        }
    }
}

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
    /// Validator public key and public shares, by validator public key.
    pub keys: HashMap<PublicKeyBytes, ValidatorKeys>,
    /// This node's share index (1-based).
    pub share_index: u64,
    /// Blocks use the minimal preset's limits (else mainnet's).
    pub minimal: bool,
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
    pub keys: HashMap<PublicKeyBytes, ValidatorKeys>,
    /// This node's share index (1-based).
    pub share_index: u64,
}

impl Middleware {
    pub fn new(cfg: MiddlewareConfig) -> Result<Self, String> {
        let position = (cfg.share_index - 1) as usize;
        let pairs: Vec<(PublicKeyBytes, PublicKeyBytes)> = cfg
            .keys
            .iter()
            .filter_map(|(v, k)| {
                k.shares
                    .get(position)
                    .map(|share| (*v, PublicKeyBytes(share.to_bytes())))
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
            keys: cfg.keys,
            share_index: cfg.share_index,
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
        let keys = self
            .keys
            .get(validator)
            .ok_or_else(|| format!("validator {validator} is not in this cluster"))?;
        let share = keys
            .shares
            .get((self.share_index - 1) as usize)
            .ok_or("the cluster lock has no share for this node")?;
        let partial = PartialSignature::from_bytes(self.share_index, &signature.0)
            .map_err(|e| format!("signature: {e}"))?;
        if !share.verify(root.as_slice(), &partial.signature) {
            return Err(format!(
                "the signature does not verify against this node's share of validator {validator}"
            ));
        }
        Ok(Partial {
            validator: *validator,
            signature: partial,
        })
    }

    /// The beacon node's answer to the client's own request, keys mapped.
    async fn forward(&self, request: Request) -> Response {
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
        self.upstream
            .forward(
                &self.identity,
                axum::http::Method::POST,
                path,
                headers,
                bytes,
            )
            .await
    }
}

/// A signed message of the client waiting for the peers' partials: its JSON
/// gets the combined signature of the partial's validator.
pub(super) struct ToCombine {
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

    /// Exchanges the client's partials over `root` for `duty`, puts the
    /// combined signatures into the client's messages and posts those to
    /// `path`; one outcome line.
    pub(super) async fn combine_and_post(
        self: Arc<Self>,
        duty: Duty,
        root: Root,
        items: Vec<ToCombine>,
        path: &'static str,
        what: &'static str,
    ) {
        let name = duty.kind.name();
        let slot = duty.slot;
        let validators: Vec<PublicKeyBytes> = items.iter().map(|i| i.partial.validator).collect();
        let partials: Vec<Partial> = items.iter().map(|i| i.partial).collect();
        let deadline = self.clock.slot_start(slot + 2);
        let combined = match self
            .store
            .exchange_partials(duty, root, partials, &validators, deadline)
            .await
        {
            Ok(c) => c,
            Err(e) => return self.metrics.duty_failed(slot, name, "internal_error", e),
        };
        if combined.len() < validators.len() {
            self.metrics.duty_failed(
                slot,
                name,
                "insufficient_partials",
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
                i.json["signature"] = json!(signature);
                Some(i.json)
            })
            .collect();
        if out.is_empty() {
            return;
        }
        let count = out.len();
        let fork = self.store.spec().fork_at_slot(slot);
        match self.post_versioned(path, fork, out).await {
            Ok(()) => self
                .metrics
                .duty_ok(slot, name, self.clock.slot_start_ms(slot), what, count),
            Err(e) => self.metrics.duty_failed(
                slot,
                name,
                "beacon_node_error",
                format!("beacon node error: {e}"),
            ),
        }
    }
}

type Shared = State<Arc<Middleware>>;

async fn forward(State(mw): Shared, request: Request) -> Response {
    mw.forward(request).await
}

/// Signing endpoints whose duties the middleware does not combine yet: a
/// partial signature must not reach the beacon node as if it were whole.
async fn not_supported_yet(request: Request) -> Response {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "{} is not supported by the dvnode middleware yet (sync committee and builder registration duties come later)",
            request.uri().path()
        ),
    )
    .into_response()
}

pub fn router(mw: Arc<Middleware>) -> Router {
    Router::new()
        .route(
            "/eth/v1/validator/attestation_data",
            get(attest::attestation_data),
        )
        .route("/eth/v1/beacon/pool/attestations", post(attest::submit))
        .route("/eth/v2/beacon/pool/attestations", post(attest::submit))
        .route("/eth/v3/validator/blocks/{slot}", get(propose::produce))
        .route("/eth/v1/beacon/blocks", post(propose::publish_full))
        .route("/eth/v2/beacon/blocks", post(propose::publish_full))
        .route(
            "/eth/v1/beacon/blinded_blocks",
            post(propose::publish_blinded),
        )
        .route(
            "/eth/v2/beacon/blinded_blocks",
            post(propose::publish_blinded),
        )
        .route(
            "/eth/v1/validator/beacon_committee_selections",
            post(select::beacon_committee_selections),
        )
        .route(
            "/eth/v1/validator/sync_committee_selections",
            post(select::sync_committee_selections),
        )
        .route(
            "/eth/v1/beacon/pool/voluntary_exits",
            post(select::voluntary_exit),
        )
        .route(
            "/eth/v1/validator/aggregate_and_proofs",
            post(aggregate::submit),
        )
        .route(
            "/eth/v2/validator/aggregate_and_proofs",
            post(aggregate::submit),
        )
        .route(
            "/eth/v2/validator/aggregate_attestation",
            get(aggregate::aggregate_attestation),
        )
        .route(
            "/eth/v1/beacon/pool/sync_committees",
            post(not_supported_yet),
        )
        .route(
            "/eth/v1/validator/contribution_and_proofs",
            post(not_supported_yet),
        )
        .route(
            "/eth/v1/validator/register_validator",
            post(not_supported_yet),
        )
        .fallback(forward)
        .with_state(mw)
}

/// Serves the validator API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, mw: Arc<Middleware>) {
    if let Err(e) = axum::serve(listener, router(mw)).await {
        tracing::error!("validator API stopped: {e}");
    }
}
