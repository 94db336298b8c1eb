//! Archives in Google Cloud Storage and Azure Blob Storage: servers started
//! here on free loopback ports and stopped at the end (npm's Azurite for
//! Azure; for GCS's XML API, the one object_store speaks, moto's S3 server:
//! PyPI's gcp-storage-emulator serves only the JSON API) hold the generated
//! archive, put there by independent clients (`tests/reference/clouds.py`,
//! plain HTTP; boto3); a table over `gs://` or `az://` gives every trend row
//! the local folder gives.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::*;
use super::stores::{TREND, free_port, sorted_rows};

/// The Azurite version scripts/test.sh installs.
const AZURITE_VERSION: &str = "3.35.0";

/// Azure's well-known emulator account and key (Azurite's default).
const AZ_ACCOUNT: &str = "devstoreaccount1";
const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An emulator on 127.0.0.1, killed when dropped (also when a test fails).
struct Emulator {
    child: Child,
    /// The cloud `clouds.py` talks to (`az`).
    cloud: &'static str,
    /// Where `clouds.py` reaches it: the account's blob endpoint.
    endpoint: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    /// Spawn `cmd` (listening on `port`) and wait until it accepts
    /// connections; its output goes to `log`.
    fn start(
        cloud: &'static str,
        mut cmd: Command,
        port: u16,
        endpoint: String,
        log: &Path,
    ) -> Self {
        let out = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let mut em = Emulator {
            child,
            cloud,
            endpoint,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = || std::fs::read_to_string(log).unwrap_or_default();
            if let Ok(Some(status)) = em.child.try_wait() {
                panic!("{cmd:?} exited ({status}): {}", log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{cmd:?} did not listen on port {port} within 60 s: {}",
                log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        em
    }

    /// npm's Azurite (its blob service), storing under `dir`.
    fn azurite(dir: &Path) -> Self {
        let port = free_port();
        let data = dir.join("azurite");
        std::fs::create_dir_all(&data).unwrap();
        let mut cmd = Command::new(azurite_blob());
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(&data)
            .args(["--silent", "--skipApiVersionCheck"])
            .current_dir(dir);
        let endpoint = format!("http://127.0.0.1:{port}/{AZ_ACCOUNT}");
        Self::start("az", cmd, port, endpoint, &dir.join("azurite.log"))
    }

    /// Run `tests/reference/clouds.py` against this emulator.
    fn py(&self, args: &[&str]) -> String {
        let out = Command::new(python())
            .arg(repo().join("tests/reference/clouds.py"))
            .args([self.cloud, &self.endpoint])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "clouds.py {} {args:?}: {}",
            self.cloud,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Create `bucket` (a container on Azure) and upload `dir`'s files
    /// under `prefix`; checks that the emulator lists them all.
    fn upload(&self, bucket: &str, prefix: &str, dir: &Path) {
        let mk = if self.cloud == "az" {
            "mkcontainer"
        } else {
            "mkbucket"
        };
        self.py(&[mk, bucket]);
        self.py(&["upload", bucket, prefix, dir.to_str().unwrap()]);
        let files = walk(dir).len();
        let listed = self.py(&["list", bucket, &format!("{prefix}/")]);
        assert_eq!(listed.lines().count(), files, "{listed}");
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Azurite's blob server: SCENEQL_AZURITE (set by scripts/test.sh), else
/// where scripts/test.sh installs it.
fn azurite_blob() -> PathBuf {
    let cache = std::env::var_os("SCENEQL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/sceneql")
        });
    let bin = std::env::var_os("SCENEQL_AZURITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("azurite/node_modules/.bin/azurite-blob"));
    assert!(
        bin.exists(),
        "Azurite's azurite-blob not found at {}: run scripts/test.sh (it installs it), or \
         `npm install --prefix {} azurite@{AZURITE_VERSION}` and set \
         SCENEQL_AZURITE={}",
        bin.display(),
        cache.join("azurite").display(),
        cache
            .join("azurite/node_modules/.bin/azurite-blob")
            .display()
    );
    bin
}

/// The trend rows of a table at `location` with `options`, and of the
/// same archive's local folder.
async fn trend_rows(location: &str, options: &str, archive: &Path) -> (Vec<String>, Vec<String>) {
    let remote = ctx();
    run_statements(
        &remote,
        &format!("CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{location}' {options}"),
    )
    .await;
    let got = sorted_rows(&remote, TREND).await;
    let folder = ctx();
    run_statements(
        &folder,
        &format!(
            "CREATE EXTERNAL TABLE obs STORED AS SCENES LOCATION '{}/'",
            archive.display()
        ),
    )
    .await;
    let want = sorted_rows(&folder, TREND).await;
    assert!(want.len() > 1000, "{} rows", want.len());
    (got, want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gs_archive_equals_the_local_folder() {
    // object_store (and GDAL's /vsigs/) speak GCS's XML API, which is
    // S3's: PyPI's gcp-storage-emulator serves only the JSON API (its XML
    // listing and HEAD answer 501), so moto's S3 server stands in for the
    // XML API here, addressed as a GCS endpoint (`gcp.base_url`).
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "archive", 64, 6, 32, Some(5));
    let archive = d.path().join("archive");
    // The QA files stripped: GDAL reads them, through /vsigs/.
    strip_files(&archive, "_QA_PIXEL.TIF");
    let s3 = super::stores::S3Server::start();
    s3.s3py(&["mkbucket", "scenes"]);
    s3.s3py(&[
        "upload-public",
        "scenes",
        "landsat",
        archive.to_str().unwrap(),
    ]);
    let options = format!(
        "OPTIONS ('gcp.base_url' '{}', 'gcp.skip_signature' 'true', 'gcp.allow_http' 'true')",
        s3.endpoint
    );
    let (got, want) = trend_rows("gs://scenes/landsat/", &options, &archive).await;
    assert_eq!(got, want, "gs:// and local rows differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_archive_equals_the_local_folder() {
    let d = tempfile::tempdir().unwrap();
    gen_sample(d.path(), "archive", 64, 6, 32, Some(5));
    let archive = d.path().join("archive");
    // The QA files stripped: GDAL reads them, through /vsiaz/ at the
    // custom endpoint.
    strip_files(&archive, "_QA_PIXEL.TIF");
    let az = Emulator::azurite(d.path());
    az.upload("scenes", "landsat", &archive);
    // Azurite's account as a custom endpoint (object_store's
    // `use_emulator` only reaches a port other than 10000 through the
    // AZURITE_BLOB_STORAGE_URL environment variable).
    let options = format!(
        "OPTIONS ('azure.endpoint' '{}', 'azure.account_name' '{AZ_ACCOUNT}', 'azure.account_key' '{AZ_KEY}', 'azure.allow_http' 'true')",
        az.endpoint
    );
    let (got, want) = trend_rows("az://scenes/landsat/", &options, &archive).await;
    assert_eq!(got, want, "az:// and local rows differ");
}
