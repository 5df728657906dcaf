//! The key files: master keys for content at rest and the audit signing key. Both
//! are created on first start when missing (through a temporary file and a hard link,
//! so processes starting together agree on one key) and must then be kept: losing
//! the master keys makes every stored body unreadable.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hermod_crypto::audit::CheckpointSigner;
use hermod_crypto::vault::Vault;
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

/// `master-keys.json`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterKeys {
    /// The key that wraps new data keys.
    pub active: String,
    /// Every master key by id (older ones still unwrap the keys they wrapped).
    pub master_keys: BTreeMap<String, String>,
    /// HMAC key for number lookups: never rotate it.
    pub lookup_key: String,
}

impl MasterKeys {
    pub fn generate() -> anyhow::Result<Self> {
        let mut keys = BTreeMap::new();
        keys.insert("k1".to_owned(), Vault::generate_key()?);
        Ok(Self {
            active: "k1".into(),
            master_keys: keys,
            lookup_key: Vault::generate_key()?,
        })
    }
}

/// Writes `contents()` to `path` unless it exists; true when written here.
fn create_once(
    path: &Path,
    contents: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let contents = contents()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::now_v7().simple()));
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&contents)?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub fn vault(settings: &Settings) -> anyhow::Result<Arc<Vault>> {
    let path = settings.master_key_file();
    if create_once(&path, || {
        Ok(serde_json::to_vec_pretty(&MasterKeys::generate()?)?)
    })? {
        tracing::warn!(
            file = %path.display(),
            "created new master keys: back this file up, and give every process the same one"
        );
    }
    private(&path)?;
    let raw = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let keys: MasterKeys = serde_json::from_slice(&raw)
        .with_context(|| format!("{} is not a master key file", path.display()))?;
    let masters: Vec<(String, String)> = keys.master_keys.into_iter().collect();
    Ok(Arc::new(
        Vault::new(&keys.active, &masters, &keys.lookup_key)
            .with_context(|| format!("master keys in {}", path.display()))?,
    ))
}

pub fn signer(settings: &Settings) -> anyhow::Result<CheckpointSigner> {
    let path = settings.signing_key_file();
    let fresh = || {
        Ok(STANDARD
            .encode(CheckpointSigner::generate_pkcs8()?)
            .into_bytes())
    };
    if create_once(&path, fresh)? {
        tracing::warn!(file = %path.display(), "created a new audit signing key");
    }
    private(&path)?;
    let raw =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let der = STANDARD
        .decode(raw.trim())
        .with_context(|| format!("{} is not base64", path.display()))?;
    CheckpointSigner::from_pkcs8(&der)
        .with_context(|| format!("{} is not an Ed25519 PKCS#8 key", path.display()))
}

/// Refuses a key file that others than its owner may read or write (checked on every
/// start): `chmod 600` it.
pub fn private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} is readable or writable by others (mode {:o}): chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// The API-key pepper: `api_key_pepper`, else (embedded mode) `<data_dir>/api-key-pepper`,
/// created on first start. With PostgreSQL it must be configured, the same on every
/// process: a pepper per machine would make keys work on one and not another.
pub fn pepper(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if !settings.api_key_pepper.0.is_empty() {
        return Ok(settings.api_key_pepper.0.as_bytes().to_vec());
    }
    if hermod_store::is_postgres_url(&settings.database_url()) {
        anyhow::bail!(
            "api_key_pepper is empty: with PostgreSQL set it (HERMOD_API_KEY_PEPPER), the same \
             secret on every process"
        );
    }
    let path = settings.data_dir.join("api-key-pepper");
    if create_once(&path, || Ok(Vault::generate_key()?.into_bytes()))? {
        tracing::warn!(file = %path.display(), "created a new API-key pepper: keep it with the database");
    }
    private(&path)?;
    let raw =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let p = raw.trim();
    if p.is_empty() {
        anyhow::bail!("{} is empty", path.display());
    }
    Ok(p.as_bytes().to_vec())
}
