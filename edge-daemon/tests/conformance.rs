//! The daemon loop without root: its handlers (passes, control queries,
//! reloads, announcer events, observations, stops) driven by golden
//! inputs against recording drivers, holo-style. Each case is a folder
//! `tests/conformance/<case>/` with `input.jsonl` (one step a line), the
//! config files it names, and `output.jsonl`: per step, every driver call
//! in order, the reply, and each VIP's decision. Regenerate with
//! `UPDATE_GOLDEN=1` and read the diff.
//!
//! The drivers here only record and answer: what they stand in for is
//! tested against the real kernel, BIRD and XDP in `tests/tests/faults.rs`,
//! `e2e.rs` and the crates' own suites.
//!
//! Steps:
//! - `{"start": {"config": FILE, "routes": {vip: state}, "tables": {vip: [[proxy, w]]}, "addresses": [ip]}}`
//!   (what a previous edged left, as the real drivers read it back)
//! - `{"checks": {"vip/service@proxy": "up" | "down" | "unknown"}}`
//! - `{"control": ["drain", "web"]}` (also undrain, maintenance on/off, weight, status, vips, dry-run)
//! - `{"reload": FILE}`
//! - `{"advance": SECONDS}`
//! - `{"kernel_addresses": [ip]}` then an observation tick
//! - `{"bird_protocols": {vip: state}}` (BIRD's view, an observation)
//! - `{"fail_routes": true | false}` (the announcer reports failures)
//! - `{"held": {vip: connections}}` (the data plane's count of a held-back
//!   VIP's established connections), then an observation tick
//! - `{"stop": "graceful" | "fast" | "restart"}`

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use edge_daemon::control::Query;
use edge_daemon::control::proto::StopMode;
use edge_daemon::daemon::{Drivers, State};
use edge_daemon::effects::{
    Addresses, Announcer, AnnouncerEvent, BgpObservation, Checker, Component, EffectError,
    EffectFuture, Forwarder,
};
use edge_daemon::reconcile::RouteState;
use edged_health::{CheckKey, CheckSpec, CheckStatus, State as Health};
use serde_json::{Value, json};

type Log = Arc<Mutex<Vec<Value>>>;

fn record(log: &Log, v: Value) {
    log.lock().unwrap().push(v);
}

// === recording drivers ===

struct Addrs {
    log: Log,
    kernel: Arc<Mutex<BTreeSet<IpAddr>>>,
}

impl Addresses for Addrs {
    fn add(&mut self, ip: IpAddr) -> EffectFuture<'_> {
        record(&self.log, json!({"addresses.add": ip}));
        self.kernel.lock().unwrap().insert(ip);
        Box::pin(std::future::ready(Ok(())))
    }
    fn remove(&mut self, ip: IpAddr) -> EffectFuture<'_> {
        record(&self.log, json!({"addresses.remove": ip}));
        self.kernel.lock().unwrap().remove(&ip);
        Box::pin(std::future::ready(Ok(())))
    }
    fn list(&mut self) -> EffectFuture<'_, BTreeSet<IpAddr>> {
        let now = self.kernel.lock().unwrap().clone();
        Box::pin(std::future::ready(Ok(now)))
    }
}

struct Fwd {
    log: Log,
    tables: BTreeMap<String, Vec<(String, u32)>>,
    held: Held,
    now: Arc<Mutex<SystemTime>>,
}

type Held = Arc<Mutex<std::collections::HashMap<String, u64>>>;

impl Forwarder for Fwd {
    fn reconfigure(&mut self, cfg: &edged_config::Config) -> Result<Vec<String>, EffectError> {
        let vips: Vec<&str> = cfg.vips.iter().map(|v| v.name.as_str()).collect();
        record(&self.log, json!({"forwarder.reconfigure": vips}));
        Ok(Vec::new())
    }
    fn set_table(&mut self, vip: &str, proxies: &[(String, u32)]) -> EffectFuture<'_> {
        record(&self.log, json!({"forwarder.set_table": {vip: proxies}}));
        self.tables.insert(vip.into(), proxies.to_vec());
        Box::pin(std::future::ready(Ok(())))
    }
    fn remove_table(&mut self, vip: &str) -> EffectFuture<'_> {
        record(&self.log, json!({"forwarder.remove_table": vip}));
        self.tables.remove(vip);
        Box::pin(std::future::ready(Ok(())))
    }
    fn set_handoff(&mut self, vip: &str, on: bool) -> EffectFuture<'_> {
        record(&self.log, json!({"forwarder.set_handoff": {vip: on}}));
        Box::pin(std::future::ready(Ok(())))
    }
    fn tables(&self) -> BTreeMap<String, Vec<(String, u32)>> {
        self.tables.clone()
    }
    fn repair(&mut self) -> EffectFuture<'_, Vec<String>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    fn counters(&self) -> Result<edged_ebpf::Counters, EffectError> {
        Ok(Default::default())
    }
    fn held_connections(
        &mut self,
        _idle: Duration,
    ) -> Result<Option<edge_daemon::effects::HeldCount>, EffectError> {
        // Counted at once, at the harness's now.
        let now = *self.now.lock().unwrap();
        Ok(Some((now, self.held.lock().unwrap().clone())))
    }
    fn describe(&self) -> String {
        "recording forwarder".into()
    }
}

struct Bgp {
    log: Log,
    queue: Arc<Mutex<Vec<(String, RouteState)>>>,
    adopted: BTreeMap<String, RouteState>,
}

impl Announcer for Bgp {
    fn set_route(&mut self, vip: &str, state: RouteState) {
        record(&self.log, json!({"announcer.set_route": {vip: state}}));
        self.queue.lock().unwrap().push((vip.into(), state));
    }
    fn reconfigure(
        &mut self,
        cfg: &edged_config::Config,
        _spec: edged_bgp::BgpSpec,
    ) -> EffectFuture<'_> {
        let vips: Vec<&str> = cfg.vips.iter().map(|v| v.name.as_str()).collect();
        record(&self.log, json!({"announcer.reconfigure": vips}));
        Box::pin(std::future::ready(Ok(())))
    }
    fn adopted(&self) -> BTreeMap<String, RouteState> {
        self.adopted.clone()
    }
    fn handover(self: Box<Self>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        record(&self.log, json!("announcer.handover"));
        Box::pin(async {})
    }
    fn shutdown(self: Box<Self>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        record(&self.log, json!("announcer.shutdown"));
        Box::pin(async {})
    }
}

type Statuses = Arc<Mutex<BTreeMap<CheckKey, CheckStatus>>>;

struct Checks {
    log: Log,
    statuses: Statuses,
}

impl Checker for Checks {
    fn update(&mut self, checks: Vec<(CheckKey, CheckSpec)>) {
        let mut st = self.statuses.lock().unwrap();
        let keys: BTreeSet<CheckKey> = checks.into_iter().map(|(k, _)| k).collect();
        st.retain(|k, _| keys.contains(k));
        for k in &keys {
            st.entry(k.clone()).or_default();
        }
        record(&self.log, json!({"checker.update": keys.len()}));
    }
    fn reprobe(&self, proxy: &str) -> usize {
        record(&self.log, json!({"checker.reprobe": proxy}));
        0
    }
    fn snapshot(&self) -> Vec<(CheckKey, CheckStatus)> {
        self.statuses
            .lock()
            .unwrap()
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect()
    }
}

// === the harness ===

struct Harness {
    st: State,
    log: Log,
    queue: Arc<Mutex<Vec<(String, RouteState)>>>,
    kernel: Arc<Mutex<BTreeSet<IpAddr>>>,
    statuses: Statuses,
    held: Held,
    now: Arc<Mutex<SystemTime>>,
    fail_routes: bool,
    dir: PathBuf,
    _tmp: edged_testlab::TempDir,
}

fn route_state(v: &Value) -> RouteState {
    serde_json::from_value(v.clone()).expect("route state")
}

impl Harness {
    fn start(case: &Path, start: &Value) -> Harness {
        let tmp = edged_testlab::TempDir::new("conf");
        let text = std::fs::read_to_string(case.join(start["config"].as_str().unwrap())).unwrap();
        let text = text.replace("STATE_DIR", &tmp.path().join("state").display().to_string());
        let config_path = tmp.path().join("edged.yaml");
        std::fs::write(&config_path, &text).unwrap();
        let (config, specs) =
            edge_daemon::specs::load(&config_path, edge_daemon::specs::HostChecks::No).unwrap();
        let log: Log = Arc::default();
        let kernel: Arc<Mutex<BTreeSet<IpAddr>>> = Arc::default();
        let addresses: BTreeSet<IpAddr> = start["addresses"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap().parse().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        *kernel.lock().unwrap() = addresses.clone();
        let tables: BTreeMap<String, Vec<(String, u32)>> = start["tables"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), serde_json::from_value(v.clone()).unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        let adopted: BTreeMap<String, RouteState> = start["routes"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), route_state(v))).collect())
            .unwrap_or_default();
        let statuses: Statuses = Arc::default();
        for (k, _) in &specs.checks {
            statuses
                .lock()
                .unwrap()
                .insert(k.clone(), CheckStatus::default());
        }
        let queue: Arc<Mutex<Vec<(String, RouteState)>>> = Arc::default();
        let held: Held = Arc::default();
        let now = Arc::new(Mutex::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        ));
        let drivers = Drivers {
            addresses: config.node.vip_interface.as_ref().map(|_| {
                Box::new(Addrs {
                    log: log.clone(),
                    kernel: kernel.clone(),
                }) as Box<dyn Addresses>
            }),
            forwarder: config.forwarder.as_ref().map(|_| {
                Box::new(Fwd {
                    log: log.clone(),
                    tables: tables.clone(),
                    held: held.clone(),
                    now: now.clone(),
                }) as Box<dyn Forwarder>
            }),
            announcer: Some(Box::new(Bgp {
                log: log.clone(),
                queue: queue.clone(),
                adopted: adopted.clone(),
            })),
            checker: Box::new(Checks {
                log: log.clone(),
                statuses: statuses.clone(),
            }),
        };
        let state_dir = edged_files::PrivateDir::open(&config.node.state_dir).unwrap();
        let intents = edge_daemon::intents::Intents::load(&state_dir).unwrap();
        let metrics = Arc::new(edge_daemon::metrics::Metrics::new());
        let mut st = State::new(
            config_path,
            config,
            specs,
            intents,
            state_dir,
            drivers,
            metrics,
        );
        let n = now.clone();
        st.clock = Arc::new(move || *n.lock().unwrap());
        st.host_checks = edge_daemon::specs::HostChecks::No;
        st.adopt(addresses, tables, adopted);
        st.refresh_health();
        Harness {
            st,
            log,
            queue,
            kernel,
            statuses,
            held,
            now,
            fail_routes: false,
            dir: case.to_owned(),
            _tmp: tmp,
        }
    }

    /// A pass, then the announcer's confirmations and the passes they
    /// cause, until nothing more happens.
    async fn settle(&mut self) {
        for _ in 0..8 {
            self.st.pass().await;
            let queued: Vec<_> = std::mem::take(&mut *self.queue.lock().unwrap());
            if queued.is_empty() {
                return;
            }
            for (vip, state) in queued {
                let result = if self.fail_routes {
                    Err(EffectError::new(
                        Component::Announcer,
                        format!("set {vip}"),
                        "BIRD did not answer",
                    ))
                } else {
                    Ok(())
                };
                self.st.on_bgp(AnnouncerEvent::Route { vip, state, result });
            }
            if self.fail_routes {
                // The errors show in the status; the changes are sent again.
                self.st.pass().await;
                return;
            }
        }
    }

    async fn step(&mut self, input: &Value) -> Value {
        let mut reply = Value::Null;
        let (verb, arg) = input
            .as_object()
            .and_then(|o| o.iter().next())
            .expect("one key per step");
        match verb.as_str() {
            "checks" => {
                let mut st = self.statuses.lock().unwrap();
                for (k, v) in arg.as_object().unwrap() {
                    let (vip, rest) = k.split_once('/').unwrap();
                    let (service, proxy) = rest.split_once('@').unwrap();
                    let key = CheckKey {
                        vip: vip.into(),
                        service: service.into(),
                        proxy: proxy.into(),
                    };
                    let s = st.get_mut(&key).unwrap_or_else(|| panic!("no check {k}"));
                    s.state = match v.as_str().unwrap() {
                        "up" => Health::Up,
                        "down" => Health::Down,
                        _ => Health::Unknown,
                    };
                    let latency = Duration::from_millis(1);
                    s.last = Some(if s.state == Health::Down {
                        edged_health::Outcome::fail(latency, edged_health::Failure::Status(503))
                    } else {
                        edged_health::Outcome::pass(latency)
                    });
                }
                drop(st);
                self.st.refresh_health();
            }
            "control" => {
                let a: Vec<&str> = arg
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect();
                let q = match a.as_slice() {
                    ["drain", v] => Query::Drain(v.to_string()),
                    ["undrain", v] => Query::Undrain(v.to_string()),
                    ["maintenance", "on"] => Query::Maintenance(true),
                    ["maintenance", "off"] => Query::Maintenance(false),
                    ["weight", p, w] => Query::Weight(p.to_string(), w.parse().ok()),
                    ["vips"] => Query::Vips,
                    ["dry-run"] => Query::Reload { dry_run: true },
                    other => panic!("unknown control step {other:?}"),
                };
                reply = match self.st.handle(q).await {
                    Ok(v) => v,
                    Err(e) => json!({"error": e.status, "message": e.message}),
                };
            }
            "reload" => {
                let text = std::fs::read_to_string(self.dir.join(arg.as_str().unwrap())).unwrap();
                let state_dir = self.st.config.node.state_dir.display().to_string();
                std::fs::write(&self.st.config_path, text.replace("STATE_DIR", &state_dir))
                    .unwrap();
                reply = match self.st.handle(Query::Reload { dry_run: false }).await {
                    Ok(v) => v,
                    Err(e) => json!({"error": e.status, "message": e.message}),
                };
            }
            "advance" => {
                *self.now.lock().unwrap() += Duration::from_secs(arg.as_u64().unwrap());
            }
            "kernel_addresses" => {
                *self.kernel.lock().unwrap() = arg
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().parse().unwrap())
                    .collect();
                self.st.observe_host().await;
            }
            "bird_protocols" => {
                let protocols = arg
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), route_state(v)))
                    .collect();
                self.st.on_bgp(AnnouncerEvent::Observed(BgpObservation {
                    at: Some((self.st.clock)()),
                    protocols: Some(protocols),
                    ..Default::default()
                }));
            }
            "fail_routes" => self.fail_routes = arg.as_bool().unwrap(),
            "held" => {
                *self.held.lock().unwrap() = serde_json::from_value(arg.clone()).unwrap();
                self.st.refresh_held();
            }
            "stop" => {
                let mode: StopMode = serde_json::from_value(arg.clone()).unwrap();
                if let Some(mode) = self.st.begin_stop(mode) {
                    match mode {
                        StopMode::Restart => {
                            if let Some(a) = self.st.drivers.announcer.take() {
                                a.handover().await;
                            }
                        }
                        _ => {
                            self.st.shutting_down = true;
                            self.settle().await;
                            self.settle().await;
                            if let Some(a) = self.st.drivers.announcer.take() {
                                a.shutdown().await;
                            }
                        }
                    }
                    reply = json!({"stopped": mode});
                }
            }
            other => panic!("unknown step {other}"),
        }
        if self.st.drivers.announcer.is_some() {
            self.settle().await;
            if self.st.drained() {
                reply = json!({"drained": true});
            }
        }
        let calls = std::mem::take(&mut *self.log.lock().unwrap());
        let vips: BTreeMap<String, String> = self
            .st
            .last_plan
            .vips
            .iter()
            .map(|d| {
                let route = serde_json::to_value(d.route).unwrap();
                let holding = d
                    .holding
                    .map(|n| format!(", holding {n} connections"))
                    .unwrap_or_default();
                (
                    d.name.clone(),
                    format!(
                        "{} {}/{}{holding}",
                        route.as_str().unwrap(),
                        d.serving.len(),
                        d.configured
                    ),
                )
            })
            .collect();
        let errors: Vec<String> = self
            .st
            .last_errors
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut out = json!({"step": input, "calls": calls, "vips": vips});
        if !reply.is_null() {
            out["reply"] = reply;
        }
        if !errors.is_empty() {
            out["errors"] = json!(errors);
        }
        if self.st.drift_repaired > 0 {
            out["drift_repaired"] = json!(self.st.drift_repaired);
        }
        out
    }
}

fn run_case(case: &Path) -> String {
    let input = std::fs::read_to_string(case.join("input.jsonl")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut lines = input
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
        let first: Value = serde_json::from_str(lines.next().expect("a start step")).unwrap();
        let mut h = Harness::start(case, &first["start"]);
        let mut out = String::new();
        let started = h.step(&json!({"advance": 0})).await;
        out += &serde_json::to_string(
            &json!({"step": first, "calls": started["calls"], "vips": started["vips"]}),
        )
        .unwrap();
        out.push('\n');
        for line in lines {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            out += &serde_json::to_string(&h.step(&v).await).unwrap();
            out.push('\n');
        }
        out
    })
}

#[test]
fn golden_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.jsonl").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "only {} cases", cases.len());
    let mut failed = Vec::new();
    for case in &cases {
        let got = run_case(case);
        let golden = case.join("output.jsonl");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
            let i = g
                .iter()
                .zip(&w)
                .position(|(a, b)| a != b)
                .unwrap_or(g.len().min(w.len()));
            failed.push(format!(
                "{}: step {} differs\n  got:  {}\n  want: {}",
                case.file_name().unwrap().to_string_lossy(),
                i + 1,
                g.get(i).unwrap_or(&"(end)"),
                w.get(i).unwrap_or(&"(end)")
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{}\n(UPDATE_GOLDEN=1 regenerates; read the diff)",
        failed.join("\n")
    );
    println!("{} golden loop cases", cases.len());
}
