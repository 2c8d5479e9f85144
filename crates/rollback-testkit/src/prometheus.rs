//! A real Prometheus server per test, scraping the test's own app every second, stopped when
//! dropped.
//!
//! The binary is `FORGE_TEST_PROM_BIN` (exported by `scripts/prometheus.sh start`, which
//! installs the Debian package `prometheus` when it is missing), else `prometheus` on `PATH`.
//! Without either the tests panic with the command that sets it up: they never skip.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const SETUP_HINT: &str = "run the tests through `scripts/test.sh rust` (it installs and checks Prometheus), or by hand: \
`eval \"$(scripts/prometheus.sh start)\"` (installs the Debian package `prometheus` with apt-get when missing)";

/// The Prometheus binary: `FORGE_TEST_PROM_BIN`, else `prometheus` on `PATH`.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("FORGE_TEST_PROM_BIN")
        && !p.is_empty()
    {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| panic!("FORGE_TEST_PROM_BIN is not set and no `prometheus` is on PATH; {SETUP_HINT}"))
}

/// A Prometheus server on `127.0.0.1`, its data in a temp dir.
pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    /// Config and data; removed on drop, after the server stops.
    _dir: TempDir,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long Prometheus may take to start, and a query to show what is expected.
const PATIENCE: Duration = Duration::from_secs(90);

impl Prometheus {
    /// Starts a server scraping `targets` (`host:port`, path `/metrics`) every second.
    pub fn start(targets: &[SocketAddr]) -> Self {
        let bin = binary();
        let dir = TempDir::new().expect("temp dir");
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [{list}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        // A port taken between the probe and the start makes Prometheus exit: try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
            let child = Command::new(&bin)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}; {SETUP_HINT}", bin.display()));
            let mut child = child;
            if wait_ready(&mut child, addr) {
                return Self { child, addr, _dir: dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "Prometheus did not start: {}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The first sample of `query` now (`None`: no data, or not a number).
    pub fn query(&self, query: &str) -> Option<f64> {
        let (code, body) = get(self.addr, &format!("/api/v1/query?query={}", encode(query)))?;
        if code != 200 {
            return None;
        }
        let doc: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let text = doc.pointer("/data/result/0/value/1")?.as_str()?;
        text.parse::<f64>().ok().filter(|v| !v.is_nan())
    }

    /// Polls `query` until its value satisfies `ok` (no timing assumption: as long as it takes,
    /// up to a generous bound), and returns that value.
    pub fn wait_for(&self, query: &str, what: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(query);
            if let Some(v) = last
                && ok(v)
            {
                return v;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("`{query}` never became {what} within {PATIENCE:?} (last value: {last:?})");
    }
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn wait_ready(child: &mut Child, addr: SocketAddr) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if get(addr, "/-/ready").is_some_and(|(code, _)| code == 200) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A plain HTTP/1.0 GET: status and body.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, raw[split + 4..].to_vec()))
}
