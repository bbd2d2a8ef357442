//! Verification keys and token verification.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use helpdesk_domain::validation::{self, Violations};
use helpdesk_domain::{AgentScope, Principal, Role};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::AuthError;
use super::token::Claims;
use crate::config::AuthConfig;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
/// An unknown `kid` refetches the JWKS at most this often (key rotation without a restart).
const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Most groups a token may carry.
const MAX_GROUPS: usize = 100;

/// Verification keys could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum KeySetupError {
    #[error("cannot read the JWKS at {source_name}: {reason}")]
    Jwks { source_name: String, reason: String },
    #[error("the JWKS at {0} holds no RS256 or ES256 key")]
    NoUsableKey(String),
    #[error("cannot read or create the development secret {path}: {reason}")]
    DevSecret { path: PathBuf, reason: String },
}

struct JwksKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies bearer tokens and turns them into principals.
pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: RwLock<Vec<JwksKey>>,
    jwks_source: Option<String>,
    last_refresh: Mutex<Option<Instant>>,
    issuer: Option<String>,
    audience: Option<String>,
    agent_scope: AgentScope,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.hs256.is_some())
            .field("jwks_source", &self.jwks_source)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Builds the verifier from configuration. With neither `HELPDESK_JWT_SECRET` nor
    /// `HELPDESK_JWKS_URL`, a random development secret is kept in `<data_dir>/dev-jwt-secret`
    /// (and `helpdesk token` signs with it), so a fresh checkout runs without set-up.
    pub async fn from_config(auth: &AuthConfig, data_dir: &Path) -> Result<Self, KeySetupError> {
        let mut secret = auth
            .jwt_secret
            .as_ref()
            .map(|s| s.expose().as_bytes().to_vec());
        if secret.is_none() && auth.jwks_url.is_none() {
            tracing::warn!(
                path = %dev_secret_path(data_dir).display(),
                "no HELPDESK_JWT_SECRET or HELPDESK_JWKS_URL: using the development secret"
            );
            secret = Some(load_or_create_dev_secret(data_dir)?);
        }
        let mut verifier = Verifier::empty(auth);
        verifier.hs256 = secret.map(|s| DecodingKey::from_secret(&s));
        if let Some(source) = &auth.jwks_url {
            let keys = fetch_jwks(source).await?;
            if keys.is_empty() {
                return Err(KeySetupError::NoUsableKey(source.clone()));
            }
            verifier.jwks = RwLock::new(keys);
            verifier.jwks_source = Some(source.clone());
        }
        Ok(verifier)
    }

    /// A verifier with only an HS256 secret (tests, tools).
    pub fn with_hs256_secret(secret: &[u8], auth: &AuthConfig) -> Self {
        let mut verifier = Verifier::empty(auth);
        verifier.hs256 = Some(DecodingKey::from_secret(secret));
        verifier
    }

    fn empty(auth: &AuthConfig) -> Self {
        Verifier {
            hs256: None,
            jwks: RwLock::new(Vec::new()),
            jwks_source: None,
            last_refresh: Mutex::new(None),
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            agent_scope: auth.agent_scope,
        }
    }

    /// Which tickets agents see.
    pub fn agent_scope(&self) -> AgentScope {
        self.agent_scope
    }

    /// Verifies `token` (signature, `exp`, `nbf`, `iss`, `aud`) and reads the principal.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("malformed token ({e})")))?;
        let key = self.key_for(header.alg, header.kid.as_deref()).await?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.validation(header.alg))
            .map_err(|e| AuthError::Invalid(describe(&e)))?
            .claims;
        principal_from(claims)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        // A configured issuer or audience must be present, not merely not contradicted.
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    async fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        match alg {
            Algorithm::HS256 => self
                .hs256
                .clone()
                .ok_or_else(|| AuthError::Invalid("HS256 tokens are not accepted here".into())),
            Algorithm::RS256 | Algorithm::ES256 => {
                if let Some(key) = self.find_jwks_key(alg, kid) {
                    return Ok(key);
                }
                if self.refresh_jwks().await
                    && let Some(key) = self.find_jwks_key(alg, kid)
                {
                    return Ok(key);
                }
                Err(AuthError::Invalid(
                    "the token's signing key is unknown".into(),
                ))
            }
            other => Err(AuthError::Invalid(format!(
                "algorithm {other:?} is not accepted"
            ))),
        }
    }

    fn find_jwks_key(&self, alg: Algorithm, kid: Option<&str>) -> Option<DecodingKey> {
        let keys = self.jwks.read().ok()?;
        let mut candidates = keys.iter().filter(|k| k.algorithm == alg);
        match kid {
            Some(kid) => candidates
                .find(|k| k.kid.as_deref() == Some(kid))
                .map(|k| k.key.clone()),
            // Without a `kid`, only an unambiguous key may be used.
            None => {
                let first = candidates.next()?;
                candidates.next().is_none().then(|| first.key.clone())
            }
        }
    }

    /// Refetches the JWKS (rate-limited); true when new keys were loaded.
    async fn refresh_jwks(&self) -> bool {
        let Some(source) = &self.jwks_source else {
            return false;
        };
        {
            let Ok(mut last) = self.last_refresh.lock() else {
                return false;
            };
            if last.is_some_and(|at| at.elapsed() < JWKS_REFRESH_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match fetch_jwks(source).await {
            Ok(keys) if !keys.is_empty() => {
                if let Ok(mut current) = self.jwks.write() {
                    *current = keys;
                }
                true
            }
            Ok(_) => false,
            Err(error) => {
                tracing::warn!(%error, "JWKS refresh failed; keeping the old keys");
                false
            }
        }
    }
}

fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "the signature does not verify".into(),
        ErrorKind::InvalidIssuer => "the token is from another issuer".into(),
        ErrorKind::InvalidAudience => "the token is for another audience".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token lacks the {claim} claim"),
        _ => format!("the token cannot be verified ({error})"),
    }
}

fn principal_from(claims: Claims) -> Result<Principal, AuthError> {
    let role = match Role::parse(&claims.role) {
        Some(Role::System) | None => {
            return Err(AuthError::Invalid(format!(
                "role {:?} is not one of customer, agent, manager, auditor, admin",
                claims.role
            )));
        }
        Some(role) => role,
    };
    let mut violations = Violations::default();
    validation::id(&claims.sub, "sub", &mut violations);
    if claims.groups.len() > MAX_GROUPS {
        violations.add("groups", "too_many", format!("at most {MAX_GROUPS} groups"));
    }
    for group in &claims.groups {
        validation::id(group, "groups", &mut violations);
    }
    match (&claims.customer_id, role) {
        (Some(customer_id), _) => validation::id(customer_id, "customer_id", &mut violations),
        (None, Role::Customer) => violations.add(
            "customer_id",
            "required",
            "customer tokens need customer_id",
        ),
        (None, _) => {}
    }
    if !violations.is_empty() {
        return Err(AuthError::Invalid(violations.to_string()));
    }
    Ok(Principal {
        id: claims.sub,
        role,
        groups: claims.groups,
        customer_id: claims.customer_id.filter(|_| role == Role::Customer),
    })
}

async fn fetch_jwks(source: &str) -> Result<Vec<JwksKey>, KeySetupError> {
    let failed = |reason: String| KeySetupError::Jwks {
        source_name: source.to_owned(),
        reason,
    };
    let text = if source.starts_with("https://") || source.starts_with("http://") {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let response = client
            .get(source)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(e.to_string()))?;
        response.text().await.map_err(|e| failed(e.to_string()))?
    } else {
        let path = source.strip_prefix("file://").unwrap_or(source);
        tokio::fs::read_to_string(path)
            .await
            .map_err(|e| failed(e.to_string()))?
    };
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| failed(e.to_string()))?;
    Ok(set.keys.iter().filter_map(usable_key).collect())
}

fn usable_key(jwk: &jsonwebtoken::jwk::Jwk) -> Option<JwksKey> {
    let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::RS256), _) => Algorithm::RS256,
        (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
        (Some(_), _) => return None,
        (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (None, AlgorithmParameters::EllipticCurve(ec)) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        (None, _) => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(JwksKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}

/// Where the development secret is kept.
pub fn dev_secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dev-jwt-secret")
}

/// Reads the development secret, creating a random one (readable by its owner only) if absent.
pub fn load_or_create_dev_secret(data_dir: &Path) -> Result<Vec<u8>, KeySetupError> {
    let path = dev_secret_path(data_dir);
    let failed = |reason: String| KeySetupError::DevSecret {
        path: path.clone(),
        reason,
    };
    if let Ok(secret) = std::fs::read_to_string(&path) {
        let secret = secret.trim();
        if secret.len() >= 32 {
            return Ok(secret.as_bytes().to_vec());
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|e| failed(e.to_string()))?;
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &secret).map_err(|e| failed(e.to_string()))?;
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())
}
