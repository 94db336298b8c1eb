//! Where archives and results live: local paths and object-store URLs
//! (`s3://`, `gs://`, `az://` / `abfss://`, `http(s)://`, `file://`).
//!
//! A location is parsed into an [`ObjectUrl`] (its store's root and the
//! object's path within it). Stores are built from the standard environment
//! (`AWS_*`, `GOOGLE_*`, `AZURE_STORAGE_*`) overridden by a table's OPTIONS
//! (`aws.*`, `gcp.*`, `azure.*`, [`StoreConfig`]) and kept for the process
//! keyed by root and configuration ([`store_for`]): one HTTP client per
//! bucket and credentials, never one per request. Secrets stay in the
//! process that was given them: a serialized [`StoreConfig`] (a plan sent to
//! a cluster) carries only the settings that are not secret, so executors
//! use the credentials of their own environment. The same settings, spelt
//! GDAL's way, reach GDAL's `/vsis3/`, `/vsigs/`, `/vsiaz/` and `/vsicurl/`
//! files ([`ObjectUrl::gdal_path`], [`StoreConfig::gdal_options`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Result, SceneError};

/// The kinds of store a location can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scheme {
    File,
    S3,
    Gcs,
    Azure,
    Http,
}

impl Scheme {
    /// The OPTIONS prefix of this store's settings (`aws`, `gcp`, `azure`).
    pub fn option_prefix(self) -> Option<&'static str> {
        match self {
            Scheme::S3 => Some("aws"),
            Scheme::Gcs => Some("gcp"),
            Scheme::Azure => Some("azure"),
            Scheme::File | Scheme::Http => None,
        }
    }

    /// True where objects can be listed and written (HTTP has neither).
    pub fn lists_and_writes(self) -> bool {
        !matches!(self, Scheme::Http)
    }
}

/// A location split into its store and the object's path in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectUrl {
    pub scheme: Scheme,
    /// The store's root: `s3://bucket`, `https://host:port`, `file://`.
    pub root: String,
    /// The bucket, container or host (empty for local files).
    pub bucket: String,
    /// The object's path within the store (no leading `/`).
    pub path: Path,
    /// The location as written (local paths made absolute).
    pub display: String,
}

/// True when `location` names an object store rather than a local path.
pub fn is_remote(location: &str) -> bool {
    location
        .split_once("://")
        .is_some_and(|(scheme, _)| !scheme.eq_ignore_ascii_case("file"))
}

impl ObjectUrl {
    /// Parse a local path, `file://` URL or object-store URL.
    pub fn parse(location: &str) -> Result<Self> {
        let bad = |reason: String| SceneError::BadOption {
            key: "LOCATION".into(),
            value: location.into(),
            reason,
        };
        let Some((scheme, _)) = location.split_once("://") else {
            return Self::local(location);
        };
        let scheme_l = scheme.to_ascii_lowercase();
        if scheme_l == "file" {
            return Self::local(&location[scheme.len() + 3..]);
        }
        let url = Url::parse(location).map_err(|e| bad(format!("not a valid URL: {e}")))?;
        let kind = match scheme_l.as_str() {
            "s3" | "s3a" => Scheme::S3,
            "gs" | "gcs" => Scheme::Gcs,
            "az" | "azure" | "abfs" | "abfss" | "adl" => Scheme::Azure,
            "http" | "https" => Scheme::Http,
            other => {
                return Err(bad(format!(
                    "'{other}://' is not a supported store; use s3://, gs://, az://, abfss://, http(s):// or a local path"
                )));
            }
        };
        let host = url.host_str().unwrap_or_default().to_string();
        if host.is_empty() {
            return Err(bad("the URL names no bucket or host".into()));
        }
        // `abfss://container@account.dfs.core.windows.net/path`: the container
        // is the user part.
        let bucket = match (kind, url.username()) {
            (Scheme::Azure, user) if !user.is_empty() => user.to_string(),
            _ => host.clone(),
        };
        let root = match kind {
            Scheme::Http => {
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                format!("{}://{host}{port}", url.scheme())
            }
            Scheme::Azure if !url.username().is_empty() => {
                format!("{}://{}@{host}", url.scheme(), url.username())
            }
            _ => format!("{}://{host}", url.scheme()),
        };
        let raw = url.path().trim_start_matches('/');
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        let path = Path::parse(&decoded).map_err(|e| bad(format!("invalid object path: {e}")))?;
        Ok(ObjectUrl {
            scheme: kind,
            root,
            bucket,
            path,
            display: location.to_string(),
        })
    }

    fn local(path: &str) -> Result<Self> {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.into());
        let display = abs.to_string_lossy().to_string();
        // A glob's characters are not all valid in a path: keep them as
        // they are (the listing splits the glob off first).
        let p = Path::from_filesystem_path(&abs)
            .unwrap_or_else(|_| Path::from(display.trim_start_matches('/')));
        Ok(ObjectUrl {
            scheme: Scheme::File,
            root: "file://".into(),
            bucket: String::new(),
            path: p,
            display,
        })
    }

    /// The URL (or local path) of another object of the same store.
    pub fn with_path(&self, path: &Path) -> String {
        match self.scheme {
            Scheme::File => format!("/{path}"),
            _ => format!("{}/{path}", self.root),
        }
    }

    /// The path GDAL opens this object by: the local path, or the object
    /// under GDAL's network file systems.
    pub fn gdal_path(&self) -> String {
        let key = self.path.as_ref();
        match self.scheme {
            Scheme::File => format!("/{key}"),
            Scheme::S3 => format!("/vsis3/{}/{key}", self.bucket),
            Scheme::Gcs => format!("/vsigs/{}/{key}", self.bucket),
            Scheme::Azure => format!("/vsiaz/{}/{key}", self.bucket),
            Scheme::Http => format!("/vsicurl/{}/{key}", self.root),
        }
    }

    /// The URL of the folder holding this object (`s3://bucket/a/b/`);
    /// None for local files and HTTP.
    pub fn folder(&self) -> Option<String> {
        self.in_store()?;
        let key = self.path.as_ref();
        let parent = key.rsplit_once('/').map_or("", |(p, _)| p);
        Some(match parent {
            "" => format!("{}/", self.root),
            p => format!("{}/{p}/", self.root),
        })
    }

    /// GDAL's name of the folder holding this object (`/vsis3/bucket/a/b/`),
    /// to which path-specific options apply; None for local files and HTTP.
    pub fn gdal_folder(&self) -> Option<String> {
        self.in_store()?;
        let path = self.gdal_path();
        path.rsplit_once('/').map(|(p, _)| format!("{p}/"))
    }

    /// Some for objects in a bucket or container (not local files or HTTP).
    fn in_store(&self) -> Option<()> {
        match self.scheme {
            Scheme::S3 | Scheme::Gcs | Scheme::Azure => Some(()),
            Scheme::File | Scheme::Http => None,
        }
    }
}

/// Settings a table's OPTIONS give its store, beyond the environment.
/// Keys are DataFusion's (`aws.region`, `aws.endpoint`, ...). Secrets are
/// kept apart: they are not serialized (a plan sent to a cluster does not
/// carry them) and never printed.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoreConfig {
    /// Settings that are not secret (endpoint, region, ...).
    pub public: BTreeMap<String, String>,
    /// Credentials: this process only.
    #[serde(skip)]
    secret: BTreeMap<String, String>,
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        m.entries(self.public.iter());
        for k in self.secret.keys() {
            m.entry(k, &"<redacted>");
        }
        m.finish()
    }
}

/// Store settings sceneql adds to object_store's own keys.
const EXTRA_KEYS: &[&str] = &["aws.requester_pays"];

/// True for keys whose values are credentials.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "access_key",
        "account_key",
        "sas",
        "service_account",
        "credential",
        "client_id",
        "connection_string",
    ]
    .iter()
    .any(|s| k.contains(s))
}

impl StoreConfig {
    /// True when `key` (an OPTIONS key) is a store setting.
    pub fn is_store_key(key: &str) -> bool {
        ["aws.", "gcp.", "azure."]
            .iter()
            .any(|p| key.to_ascii_lowercase().starts_with(p))
    }

    /// Add one OPTIONS setting, checked against the store's known keys.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let key = key.to_ascii_lowercase();
        let bad = |reason: String| SceneError::BadOption {
            key: key.clone(),
            value: if is_secret_key(&key) {
                "<redacted>".into()
            } else {
                value.into()
            },
            reason,
        };
        let (prefix, rest) = key.split_once('.').unwrap_or(("", &key));
        let known = EXTRA_KEYS.contains(&key.as_str())
            || match prefix {
                "aws" => format!("aws_{rest}").parse::<AmazonS3ConfigKey>().is_ok(),
                "gcp" => format!("google_{rest}").parse::<GoogleConfigKey>().is_ok(),
                "azure" => {
                    format!("azure_{rest}").parse::<AzureConfigKey>().is_ok()
                        || format!("azure_storage_{rest}")
                            .parse::<AzureConfigKey>()
                            .is_ok()
                }
                _ => false,
            };
        if !known {
            return Err(bad(format!(
                "not a setting of the {prefix} object store (e.g. '{prefix}.region', '{prefix}.endpoint', '{prefix}.access_key_id')"
            )));
        }
        if is_secret_key(&key) {
            self.secret.insert(key, value.to_string());
        } else {
            self.public.insert(key, value.to_string());
        }
        Ok(())
    }

    /// True when no setting was given.
    pub fn is_empty(&self) -> bool {
        self.public.is_empty() && self.secret.is_empty()
    }

    fn entries(&self, prefix: &str) -> impl Iterator<Item = (&str, &str)> {
        self.public
            .iter()
            .chain(self.secret.iter())
            .filter_map(move |(k, v)| {
                k.strip_prefix(prefix)
                    .and_then(|r| r.strip_prefix('.'))
                    .map(|r| (r, v.as_str()))
            })
    }

    fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.public.hash(&mut h);
        self.secret.hash(&mut h);
        h.finish()
    }

    /// The S3 settings in effect for this config: the environment's,
    /// overridden by OPTIONS.
    fn s3_builder(&self, bucket: &str) -> Result<AmazonS3Builder> {
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (k, v) in self.entries("aws") {
            let key = match k {
                "requester_pays" => AmazonS3ConfigKey::RequestPayer,
                _ => option_key("aws", k, &format!("aws_{k}"))?,
            };
            b = b.with_config(key, v);
        }
        // `AWS_ALLOW_HTTP` and an `http://` endpoint: plain HTTP is what
        // the endpoint asks for.
        if b.get_config_value(&AmazonS3ConfigKey::Endpoint)
            .is_some_and(|e| e.starts_with("http://"))
        {
            b = b.with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp),
                "true",
            );
        }
        Ok(b)
    }

    /// The Google Cloud Storage settings in effect for this config: the
    /// environment's, overridden by OPTIONS.
    fn gcs_builder(&self, bucket: &str) -> Result<GoogleCloudStorageBuilder> {
        let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
        for (k, v) in self.entries("gcp") {
            b = b.with_config(option_key("gcp", k, &format!("google_{k}"))?, v);
        }
        if b.get_config_value(&GoogleConfigKey::BaseUrl)
            .is_some_and(|u| u.starts_with("http://"))
        {
            b = b.with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), "true");
        }
        Ok(b)
    }

    /// The Azure settings in effect for this config and `url`'s container:
    /// the environment's, overridden by OPTIONS.
    fn azure_builder(&self, url: &ObjectUrl) -> Result<MicrosoftAzureBuilder> {
        let mut b = MicrosoftAzureBuilder::from_env().with_url(url.root.clone());
        if !url.root.contains('@') {
            b = b.with_container_name(&url.bucket);
        }
        for (k, v) in self.entries("azure") {
            let key = option_key("azure", k, &format!("azure_{k}"))
                .or_else(|_| option_key("azure", k, &format!("azure_storage_{k}")))?;
            b = b.with_config(key, v);
        }
        if b.get_config_value(&AzureConfigKey::Endpoint)
            .is_some_and(|u| u.starts_with("http://"))
        {
            b = b.with_config(AzureConfigKey::Client(ClientConfigKey::AllowHttp), "true");
        }
        Ok(b)
    }

    /// GDAL configuration options for `url`'s objects (applied as
    /// path-specific options, [`gdal_setup`]).
    pub fn gdal_options(&self, url: &ObjectUrl) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: String| out.push((k.to_string(), v));
        match url.scheme {
            Scheme::S3 => {
                let Ok(b) = self.s3_builder(&url.bucket) else {
                    return Vec::new();
                };
                let get = |k: AmazonS3ConfigKey| b.get_config_value(&k);
                if let Some(e) = get(AmazonS3ConfigKey::Endpoint) {
                    let (https, host) = match e.split_once("://") {
                        Some((s, h)) => (s.eq_ignore_ascii_case("https"), h),
                        None => (true, e.as_str()),
                    };
                    put("AWS_S3_ENDPOINT", host.trim_end_matches('/').to_string());
                    put("AWS_HTTPS", if https { "YES" } else { "NO" }.into());
                    let virtual_hosting = get(AmazonS3ConfigKey::VirtualHostedStyleRequest)
                        .is_some_and(|v| v == "true");
                    put(
                        "AWS_VIRTUAL_HOSTING",
                        if virtual_hosting { "TRUE" } else { "FALSE" }.into(),
                    );
                }
                if let Some(v) = get(AmazonS3ConfigKey::AccessKeyId) {
                    put("AWS_ACCESS_KEY_ID", v);
                }
                if let Some(v) = get(AmazonS3ConfigKey::SecretAccessKey) {
                    put("AWS_SECRET_ACCESS_KEY", v);
                }
                if let Some(v) = get(AmazonS3ConfigKey::Token) {
                    put("AWS_SESSION_TOKEN", v);
                }
                if let Some(v) = get(AmazonS3ConfigKey::Region) {
                    put("AWS_REGION", v);
                }
                if get(AmazonS3ConfigKey::SkipSignature).is_some_and(|v| v == "true") {
                    put("AWS_NO_SIGN_REQUEST", "YES".into());
                }
                if get(AmazonS3ConfigKey::RequestPayer).is_some_and(|v| v == "true") {
                    put("AWS_REQUEST_PAYER", "requester".into());
                }
            }
            Scheme::Gcs => {
                let Ok(b) = self.gcs_builder(&url.bucket) else {
                    return Vec::new();
                };
                let get = |k: GoogleConfigKey| b.get_config_value(&k);
                if let Some(v) = get(GoogleConfigKey::ServiceAccount) {
                    put("GOOGLE_APPLICATION_CREDENTIALS", v);
                } else if let Some(v) = get(GoogleConfigKey::ApplicationCredentials) {
                    put("GOOGLE_APPLICATION_CREDENTIALS", v);
                }
                if let Some(v) = get(GoogleConfigKey::BaseUrl) {
                    put("CPL_GS_ENDPOINT", format!("{}/", v.trim_end_matches('/')));
                }
                if get(GoogleConfigKey::SkipSignature).is_some_and(|v| v == "true") {
                    put("GS_NO_SIGN_REQUEST", "YES".into());
                }
            }
            Scheme::Azure => {
                let Ok(b) = self.azure_builder(url) else {
                    return Vec::new();
                };
                let get = |k: AzureConfigKey| b.get_config_value(&k);
                let account = get(AzureConfigKey::AccountName);
                let key = get(AzureConfigKey::AccessKey);
                let sas = get(AzureConfigKey::SasKey);
                let emulator = get(AzureConfigKey::UseEmulator).is_some_and(|v| v == "true");
                let endpoint = get(AzureConfigKey::Endpoint).or_else(|| {
                    emulator.then(|| {
                        format!(
                            "http://127.0.0.1:10000/{}",
                            account.as_deref().unwrap_or("devstoreaccount1")
                        )
                    })
                });
                if get(AzureConfigKey::SkipSignature).is_some_and(|v| v == "true") {
                    put("AZURE_NO_SIGN_REQUEST", "YES".into());
                }
                match endpoint {
                    // GDAL takes a custom endpoint (Azurite, a private
                    // cloud) from a connection string only.
                    Some(e) => {
                        let protocol = e.split("://").next().unwrap_or("https");
                        let mut c = format!("DefaultEndpointsProtocol={protocol};");
                        if let Some(a) = &account {
                            c.push_str(&format!("AccountName={a};"));
                        }
                        match (&key, &sas) {
                            (Some(k), _) => c.push_str(&format!("AccountKey={k};")),
                            (None, Some(s)) => c.push_str(&format!(
                                "SharedAccessSignature={};",
                                s.trim_start_matches('?')
                            )),
                            (None, None) => {}
                        }
                        c.push_str(&format!("BlobEndpoint={};", e.trim_end_matches('/')));
                        put("AZURE_STORAGE_CONNECTION_STRING", c);
                    }
                    None => {
                        if let Some(a) = account {
                            put("AZURE_STORAGE_ACCOUNT", a);
                        }
                        if let Some(k) = key {
                            put("AZURE_STORAGE_ACCESS_KEY", k);
                        }
                        if let Some(s) = sas {
                            put("AZURE_STORAGE_SAS_TOKEN", s);
                        }
                    }
                }
            }
            Scheme::File | Scheme::Http => {}
        }
        out
    }
}

/// object_store's key `name` for the OPTIONS key `{prefix}.{key}`.
fn option_key<K: std::str::FromStr>(prefix: &str, key: &str, name: &str) -> Result<K>
where
    K::Err: fmt::Display,
{
    name.parse().map_err(|e: K::Err| SceneError::BadOption {
        key: format!("{prefix}.{key}"),
        value: "<hidden>".into(),
        reason: e.to_string(),
    })
}

/// How long a request is retried (5xx, 429 / SlowDown, dropped
/// connections, truncated bodies) before its error is the query's, and
/// how long a connection may take to open.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: &str = "5s";

fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: RETRY_TIMEOUT,
    }
}

type StoreKey = (String, u64);

/// The process's stores, by root and configuration.
static STORES: LazyLock<Mutex<HashMap<StoreKey, Arc<dyn ObjectStore>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The configuration last used for each root, for GDAL's reads of its
/// objects ([`gdal_setup`]).
static CONFIGS: LazyLock<Mutex<HashMap<String, StoreConfig>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The configuration of the table whose files GDAL reads, by the folder
/// holding them ([`use_for_gdal`]).
static FOLDER_CONFIGS: LazyLock<Mutex<HashMap<String, Arc<StoreConfig>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The GDAL prefixes configured so far, with the configuration applied.
static GDAL_APPLIED: LazyLock<Mutex<HashMap<String, u64>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// GDAL reads of the object at `path` (a URL; local paths are ignored)
/// use `config`, the settings of the table reading it.
///
/// GDAL takes settings per path prefix, and a bucket may hold the archives
/// of two tables with different settings (credentials per prefix, or one
/// table through a proxy): settings are kept, and given to GDAL, per
/// folder of the objects it reads, not per bucket.
pub fn use_for_gdal(path: &str, config: &StoreConfig) {
    if !is_remote(path) {
        return;
    }
    let Ok(url) = ObjectUrl::parse(path) else {
        return;
    };
    let Some(folder) = url.folder() else {
        return;
    };
    let mut folders = FOLDER_CONFIGS.lock().unwrap_or_else(|e| e.into_inner());
    if folders.get(&folder).is_none_or(|c| **c != *config) {
        folders.insert(folder, Arc::new(config.clone()));
    }
}

/// The GDAL options to apply, as path-specific options, to the folder of
/// `url` before GDAL opens it, if they have not been applied yet (or have
/// changed since): the settings of the table reading it
/// ([`use_for_gdal`]), else those last used with its root, else the
/// environment's.
pub fn gdal_setup(url: &ObjectUrl) -> Option<(String, Vec<(String, String)>)> {
    let folder = url.folder()?;
    let prefix = url.gdal_folder()?;
    let config = match FOLDER_CONFIGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&folder)
    {
        Some(c) => StoreConfig::clone(c),
        None => CONFIGS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&url.root)
            .cloned()
            .unwrap_or_default(),
    };
    let fingerprint = config.fingerprint();
    let mut applied = GDAL_APPLIED.lock().unwrap_or_else(|e| e.into_inner());
    if applied.get(&prefix) == Some(&fingerprint) {
        return None;
    }
    applied.insert(prefix.clone(), fingerprint);
    Some((prefix, config.gdal_options(url)))
}

/// The store of `url` under `config`: built once per root and
/// configuration for the process, then shared.
pub fn store_for(url: &ObjectUrl, config: &StoreConfig) -> Result<Arc<dyn ObjectStore>> {
    CONFIGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(url.root.clone(), config.clone());
    let key = (url.root.clone(), config.fingerprint());
    let mut stores = STORES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = stores.get(&key) {
        return Ok(s.clone());
    }
    let store = build(url, config)?;
    stores.insert(key, store.clone());
    Ok(store)
}

/// The store of `url`'s root for a reader or writer given no settings of
/// its own (DataFusion's Parquet reads and writes, GDAL): under the
/// settings last used with that root in this process, else the
/// environment's.
pub fn store_for_root(url: &ObjectUrl) -> Result<Arc<dyn ObjectStore>> {
    let config = CONFIGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&url.root)
        .cloned()
        .unwrap_or_default();
    store_for(url, &config)
}

fn build(url: &ObjectUrl, config: &StoreConfig) -> Result<Arc<dyn ObjectStore>> {
    let err = |e: object_store::Error| SceneError::Store {
        location: url.root.clone(),
        message: e.to_string(),
    };
    let connect = ClientConfigKey::ConnectTimeout;
    Ok(match url.scheme {
        Scheme::File => Arc::new(LocalFileSystem::new()),
        Scheme::S3 => Arc::new(
            config
                .s3_builder(&url.bucket)?
                .with_config(AmazonS3ConfigKey::Client(connect), CONNECT_TIMEOUT)
                .with_retry(retry_config())
                .build()
                .map_err(err)?,
        ),
        Scheme::Gcs => Arc::new(
            config
                .gcs_builder(&url.bucket)?
                .with_config(GoogleConfigKey::Client(connect), CONNECT_TIMEOUT)
                .with_retry(retry_config())
                .build()
                .map_err(err)?,
        ),
        Scheme::Azure => Arc::new(
            config
                .azure_builder(url)?
                .with_config(AzureConfigKey::Client(connect), CONNECT_TIMEOUT)
                .with_retry(retry_config())
                .build()
                .map_err(err)?,
        ),
        Scheme::Http => Arc::new(
            HttpBuilder::new()
                .with_url(url.root.clone())
                .with_config(connect, CONNECT_TIMEOUT)
                // Plain HTTP for `http://` URLs: the URL says so.
                .with_config(
                    ClientConfigKey::AllowHttp,
                    url.root.starts_with("http://").to_string(),
                )
                .with_retry(retry_config())
                .build()
                .map_err(err)?,
        ),
    })
}

/// The first line of a store error, without the server's XML body and
/// without URL query strings (which may hold a signature or SAS token).
pub fn first_line(message: &str) -> String {
    let m = message.split('\n').next().unwrap_or_default();
    let m = match m.find("<?xml") {
        Some(i) => m[..i].trim_end_matches([':', ' ']),
        None => m,
    };
    static QUERY: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"\?[^\s]*").expect("a valid pattern"));
    QUERY.replace_all(m, "?...").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_store_and_path() {
        let u = ObjectUrl::parse("s3://bucket/landsat/LC08_x_SR_B4.TIF").unwrap();
        assert_eq!(u.scheme, Scheme::S3);
        assert_eq!(u.root, "s3://bucket");
        assert_eq!(u.path.as_ref(), "landsat/LC08_x_SR_B4.TIF");
        assert_eq!(u.gdal_path(), "/vsis3/bucket/landsat/LC08_x_SR_B4.TIF");
        assert_eq!(u.with_path(&Path::from("a/b.tif")), "s3://bucket/a/b.tif");
        let u = ObjectUrl::parse("https://example.test:8080/a/b%20c.tif").unwrap();
        assert_eq!(u.root, "https://example.test:8080");
        assert_eq!(u.path.as_ref(), "a/b c.tif");
        assert_eq!(
            u.gdal_path(),
            "/vsicurl/https://example.test:8080/a/b c.tif"
        );
        let u = ObjectUrl::parse("abfss://cont@acct.dfs.core.windows.net/x/y.tif").unwrap();
        assert_eq!(u.bucket, "cont");
        assert_eq!(u.path.as_ref(), "x/y.tif");
        let u = ObjectUrl::parse("file:///tmp/a/b.tif").unwrap();
        assert_eq!(u.scheme, Scheme::File);
        assert_eq!(u.gdal_path(), "/tmp/a/b.tif");
        assert!(ObjectUrl::parse("ftp://x/y").is_err());
        assert!(!is_remote("/tmp/x") && !is_remote("file:///x") && is_remote("gs://b/x"));
    }

    #[test]
    fn secrets_are_neither_serialized_nor_printed() {
        let mut c = StoreConfig::default();
        c.set("aws.access_key_id", "AKIDEXAMPLE").unwrap();
        c.set("aws.secret_access_key", "wJalrXUtnFEMI").unwrap();
        c.set("aws.session_token", "tok123").unwrap();
        c.set("aws.endpoint", "http://127.0.0.1:9000").unwrap();
        c.set("aws.requester_pays", "true").unwrap();
        let shown = format!("{c:?}");
        let json = serde_json::to_string(&c).unwrap();
        for secret in ["AKIDEXAMPLE", "wJalrXUtnFEMI", "tok123"] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(!json.contains(secret), "{json}");
        }
        assert!(json.contains("127.0.0.1:9000"), "{json}");
        let e = c.set("aws.secret_acces_key", "oops-secret").unwrap_err();
        assert!(!e.to_string().contains("oops-secret"), "{e}");
        let gdal: BTreeMap<_, _> = c
            .gdal_options(&ObjectUrl::parse("s3://b/k").unwrap())
            .into_iter()
            .collect();
        assert_eq!(gdal["AWS_S3_ENDPOINT"], "127.0.0.1:9000");
        assert_eq!(gdal["AWS_HTTPS"], "NO");
        assert_eq!(gdal["AWS_VIRTUAL_HOSTING"], "FALSE");
        assert_eq!(gdal["AWS_SECRET_ACCESS_KEY"], "wJalrXUtnFEMI");
        assert_eq!(gdal["AWS_REQUEST_PAYER"], "requester");
    }

    #[test]
    fn stores_are_built_once_per_root_and_config() {
        let mut c = StoreConfig::default();
        c.set("aws.endpoint", "http://127.0.0.1:1").unwrap();
        c.set("aws.region", "us-east-1").unwrap();
        let a = ObjectUrl::parse("s3://one/x").unwrap();
        let b = ObjectUrl::parse("s3://one/y/z").unwrap();
        let s1 = store_for(&a, &c).unwrap();
        let s2 = store_for(&b, &c).unwrap();
        assert!(Arc::ptr_eq(&s1, &s2));
        let mut d = c.clone();
        d.set("aws.access_key_id", "other").unwrap();
        d.set("aws.secret_access_key", "other-secret").unwrap();
        assert!(!Arc::ptr_eq(&s1, &store_for(&a, &d).unwrap()));
    }
}
