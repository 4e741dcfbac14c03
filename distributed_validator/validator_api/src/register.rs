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
use dv_node::parsig::Partial;
use dv_types::{compute_signing_root, DomainKind, Root, SignedValidatorRegistration};
use serde_json::Value;

/// `POST /eth/v1/validator/register_validator` from the client.
pub(super) async fn register_validators(
    State(mw): Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let items = mw.batch_items::<SignedValidatorRegistration>(&headers, &body, "registrations")?;
    let mut ours = Vec::new();
    let mut outsiders = Vec::new();
    let mut failures = Vec::new();
    let mut parsed = Vec::new();
    for (position, json) in items.into_iter().enumerate() {
        match check(&mw, &json) {
            Ok(Some(claim)) => parsed.push((position, claim)),
            Ok(None) => outsiders.push(json),
            Err(e) => failures.push((position, e)),
        }
    }
    // The client's partials in one batch check (a client sends hundreds
    // at once, each epoch), each on its own only when it fails.
    for (_, claim) in mw.keep_verified(parsed, |c| (c.root, c.partial), &mut failures) {
        ours.push(claim.registration);
    }
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

/// The lock's registration for the client's item; `None` if the item's key
/// is not one of this node's shares (forwarded as it is).
/// A client's registration of one of the cluster's validators, its partial
/// parsed (not verified yet) and the lock's registration it stands for.
struct Claim {
    root: Root,
    partial: Partial,
    registration: SignedValidatorRegistration,
}

fn check(mw: &Middleware, json: &Value) -> Result<Option<Claim>, String> {
    let signed: SignedValidatorRegistration = serde_json::from_value(json.clone())
        .map_err(|e| format!("not a SignedValidatorRegistration: {e}"))?;
    let Some(validator) = mw.identity.validator_of_share(&signed.message.pubkey) else {
        return Ok(None);
    };
    let domain = mw
        .store
        .spec()
        .domain(DomainKind::ApplicationBuilder, 0, Root::ZERO);
    let root = compute_signing_root(&signed.message, domain);
    let partial = mw.parse_partial(&validator, &signed.signature)?;
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
    Ok(Some(Claim {
        root,
        partial,
        registration: registration.clone(),
    }))
}
