//! Authentication: bearer JWTs verified against configured keys, turned into a [`Principal`].
//!
//! - `keys`: where verification keys come from (HS256 secret, JWKS file or URL, or a generated
//!   development secret);
//! - `token`: the claims we read and `mint`, used by `helpdesk token`;
//! - `extract`: the [`Authenticated`] extractor, the only way identity enters a handler.
//!
//! Authorization decisions are not made here: they live in `helpdesk_domain::access`.

mod extract;
mod keys;
mod token;

pub use extract::{Authenticated, StreamAuthenticated};
pub use keys::{KeySetupError, Verifier, dev_secret_path, load_or_create_dev_secret};
pub use token::{Claims, MintError, mint, parse_ttl};

pub use helpdesk_domain::Principal;

/// Why a request's credentials were not accepted. Always answered 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("send an Authorization: Bearer <token> header")]
    Missing,
    /// The token is malformed, unsigned, signed with an unknown key, expired, not yet valid,
    /// for another issuer or audience, or lacks a claim we need.
    #[error("invalid token: {0}")]
    Invalid(String),
}
