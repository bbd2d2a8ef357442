//! RS256 tokens verified through a JWKS file, with a key pair generated here.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use helpdesk_domain::Role;
use helpdesk_platform::AuthConfig;
use helpdesk_platform::auth::{AuthError, Claims, Verifier, mint};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};

fn claims() -> Claims {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Claims {
        sub: "agent-7".into(),
        role: "agent".into(),
        groups: vec!["billing".into(), "tech".into()],
        customer_id: None,
        exp: now + 600,
        nbf: None,
        iat: Some(now),
        iss: None,
        aud: None,
    }
}

fn rsa_key() -> EncodingKey {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = private.to_pkcs1_pem(LineEnding::LF).unwrap();
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

fn sign(key: &EncodingKey, kid: &str, claims: &Claims) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// Writes a JWKS holding the public half of `key` under `kid`; returns the file's path.
fn write_jwks(dir: &std::path::Path, key: &EncodingKey, kid: &str) -> String {
    let mut jwk = Jwk::from_encoding_key(key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    let path = dir.join("jwks.json");
    std::fs::write(
        &path,
        serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap(),
    )
    .unwrap();
    path.display().to_string()
}

fn scratch_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("helpdesk-jwks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn an_rs256_token_verifies_through_a_jwks_file_and_others_do_not() {
    let dir = scratch_dir();
    let key = rsa_key();
    let path = write_jwks(&dir, &key, "key-1");
    let config = AuthConfig {
        jwks_url: Some(format!("file://{path}")),
        ..AuthConfig::default()
    };
    let verifier = Verifier::from_config(&config, &dir).await.unwrap();

    let principal = verifier
        .verify(&sign(&key, "key-1", &claims()))
        .await
        .unwrap();
    assert_eq!(principal.id, "agent-7");
    assert_eq!(principal.role, Role::Agent);
    assert_eq!(principal.groups, ["billing", "tech"]);

    let stranger = rsa_key();
    let forged = sign(&stranger, "key-1", &claims());
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(AuthError::Invalid(_))
    ));
    let unknown_kid = sign(&key, "key-2", &claims());
    assert!(matches!(
        verifier.verify(&unknown_kid).await,
        Err(AuthError::Invalid(_))
    ));

    // With only a JWKS configured, an HS256 token is refused outright (no algorithm confusion),
    // and no development secret is created.
    let hs256 = mint(b"whatever-secret-whatever-secret!", &claims()).unwrap();
    assert!(matches!(
        verifier.verify(&hs256).await,
        Err(AuthError::Invalid(_))
    ));
    assert!(!dir.join("dev-jwt-secret").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_from_the_jwks_without_a_restart() {
    let dir = scratch_dir();
    let old = rsa_key();
    let path = write_jwks(&dir, &old, "old");
    let config = AuthConfig {
        jwks_url: Some(path),
        ..AuthConfig::default()
    };
    let verifier = Verifier::from_config(&config, &dir).await.unwrap();
    let new = rsa_key();
    write_jwks(&dir, &new, "new");
    let principal = verifier
        .verify(&sign(&new, "new", &claims()))
        .await
        .unwrap();
    assert_eq!(principal.id, "agent-7");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_customer_token_without_customer_id_or_with_the_system_role_is_refused() {
    let verifier =
        Verifier::with_hs256_secret(b"0123456789abcdef0123456789abcdef", &AuthConfig::default());
    let customer = Claims {
        role: "customer".into(),
        ..claims()
    };
    let token = mint(b"0123456789abcdef0123456789abcdef", &customer).unwrap();
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::Invalid(_))
    ));
    let system = Claims {
        role: "system".into(),
        ..claims()
    };
    let token = mint(b"0123456789abcdef0123456789abcdef", &system).unwrap();
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::Invalid(_))
    ));
}
