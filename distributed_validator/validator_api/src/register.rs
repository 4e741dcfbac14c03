//! Builder registrations through the middleware.
//!
//! A validator client signs a registration naming its own share key, so
//! operators' partials are over different messages and can never combine.
//! The registration that counts is the one signed into the cluster lock when
//! the cluster was created (`create cluster --fee-recipient`, by whoever held
//! the whole key). A client's request says that the validator is to be
//! registered: once its partial checks out against this node's share, the
//! node submits the lock's registration, provided the client asks for the
//! lock's fee recipient and gas limit (anything else needs a new lock).

use super::{ApiError, Middleware, Shared};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dv_types::{
    compute_signing_root, DomainKind, PublicKeyBytes, Root, SignatureBytes,
    SignedValidatorRegistration,
};
use serde_json::Value;

/// `POST /eth/v1/validator/register_validator` from the client. Runs as a
/// task of its own: a client that gives up waiting does not stop the
/// registrations it sent from being checked and submitted.
pub(super) async fn register_validators(
    State(mw): Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    tokio::spawn(register(mw, uri, headers, body))
        .await
        .unwrap_or_else(|e| {
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("registrations: {e}"),
            ))
        })
}

async fn register(
    mw: std::sync::Arc<Middleware>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let items = mw.batch_items::<SignedValidatorRegistration>(&headers, &body, "registrations")?;
    let mut ours = Vec::new();
    let mut outsiders = Vec::new();
    let mut failures = Vec::new();
    let mut fresh = Vec::new();
    for (position, json) in items.into_iter().enumerate() {
        match check(&mw, &json) {
            Ok(Some(Claim::Seen(registration))) => ours.push(registration),
            Ok(Some(Claim::New(claim))) => fresh.push((position, claim)),
            Ok(None) => outsiders.push(json),
            Err(e) => failures.push((position, e)),
        }
    }
    // The client's new partials, each checked against this node's share at
    // the lowest CPU priority: nothing is combined from them (the lock's
    // registration is what is submitted), they can wait for idle CPU, and a
    // client signs thousands at once when it starts, which at normal
    // priority would hold up the slot's attestations and sync messages.
    let checker = mw.clone();
    let verdicts = dv_node::cpu::in_background(move || {
        fresh
            .into_iter()
            .map(|(position, claim)| {
                let verdict =
                    checker.verify_partial(&claim.validator, claim.root, &claim.signature);
                (position, claim, verdict)
            })
            .collect::<Vec<_>>()
    })
    .await
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "registrations: no thread to check the partials on",
        )
    })?;
    let mut verified = Vec::new();
    for (position, claim, verdict) in verdicts {
        match verdict {
            Ok(_) => verified.push(claim),
            Err(e) => failures.push((position, e)),
        }
    }
    mw.remember_registrations(verified.iter().map(|c| (c.validator, c.root, c.signature)));
    ours.extend(verified.into_iter().map(|claim| claim.registration));
    if !outsiders.is_empty() {
        let response = mw
            .forward_json(uri.path(), &headers, Value::Array(outsiders))
            .await;
        if !response.status().is_success() {
            return Ok(response);
        }
    }
    if !ours.is_empty() {
        let count = ours.len();
        let response = mw
            .forward_json(uri.path(), &headers, serde_json::json!(ours))
            .await;
        if !response.status().is_success() {
            return Ok(response);
        }
        tracing::info!(
            count,
            "builder registrations from the cluster lock submitted"
        );
    }
    if failures.is_empty() {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(ApiError::batch("registrations", failures))
    }
}

/// A client's registration of one of the cluster's validators, with the
/// lock's registration it stands for.
enum Claim {
    /// The same signing root and signature as one that verified before.
    Seen(SignedValidatorRegistration),
    /// Parsed, not verified yet.
    New(Box<NewClaim>),
}

struct NewClaim {
    validator: PublicKeyBytes,
    root: Root,
    signature: SignatureBytes,
    registration: SignedValidatorRegistration,
}

/// The client's item as a claim on the lock's registration; `None` if the
/// item's key is not one of this node's shares (forwarded as it is).
fn check(mw: &Middleware, json: &Value) -> Result<Option<Claim>, String> {
    let signed: SignedValidatorRegistration = serde_json::from_value(json.clone())
        .map_err(|e| format!("not a SignedValidatorRegistration: {e}"))?;
    let Some(validator) = mw.identity.validator_of_share(&signed.message.pubkey) else {
        return Ok(None);
    };
    let registration = mw.registrations.get(&validator).ok_or_else(|| {
        format!(
            "the cluster lock holds no builder registration for validator {validator} (create the cluster with --fee-recipient)"
        )
    })?;
    let (lock, asked) = (&registration.message, &signed.message);
    if (lock.fee_recipient, lock.gas_limit) != (asked.fee_recipient, asked.gas_limit) {
        return Err(format!(
            "the cluster lock registers validator {validator} with fee recipient {:?} and gas limit {}; the client asked for {:?} and {}",
            lock.fee_recipient, lock.gas_limit, asked.fee_recipient, asked.gas_limit
        ));
    }
    let domain = mw
        .store
        .spec()
        .domain(DomainKind::ApplicationBuilder, 0, Root::ZERO);
    let root = compute_signing_root(&signed.message, domain);
    if mw.registration_seen(&validator, root, &signed.signature) {
        return Ok(Some(Claim::Seen(registration.clone())));
    }
    Ok(Some(Claim::New(Box::new(NewClaim {
        validator,
        root,
        signature: signed.signature,
        registration: registration.clone(),
    }))))
}

impl Middleware {
    /// Whether the client's registration partial for `validator` is the one
    /// that verified last time (same root, same signature bytes).
    fn registration_seen(
        &self,
        validator: &PublicKeyBytes,
        root: Root,
        signature: &SignatureBytes,
    ) -> bool {
        self.verified_registrations
            .lock()
            .is_ok_and(|seen| seen.get(validator) == Some(&(root, *signature)))
    }

    /// Keeps the verified registration partials, one per validator (the
    /// latest): bounded by the cluster's validator count.
    fn remember_registrations(
        &self,
        verified: impl Iterator<Item = (PublicKeyBytes, Root, SignatureBytes)>,
    ) {
        if let Ok(mut seen) = self.verified_registrations.lock() {
            for (validator, root, signature) in verified {
                seen.insert(validator, (root, signature));
            }
        }
    }
}
