//! The SMPP server with independent clients: PyPI smpplib and npm smpp (node-smpp),
//! pinned in tests/smpp and installed by scripts/test. No Hermod code on the client
//! side; the raw protocol checks use rusmpp's codec.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hermod_sim::smsc::{Smsc, SmscConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::*;

const SENDER: &str = "+447700900123";
const CUSTOMER: &str = "+447911123456";
const SYSTEM_ID: &str = "acme";
const PASSWORD: &str = "s3cr3t";

/// `hermod smpp-accounts create`: (system_id, password line if printed).
fn smpp_account(data: &Path, tenant: &str, extra: &[&str]) -> (String, Option<String>) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["smpp-accounts", "create", "--tenant", tenant])
        .args(extra)
        .envs(backend_env(data))
        .env("HERMOD_DATA_DIR", data)
        .env("HERMOD_LOG", "warn")
        .output()
        .expect("run hermod smpp-accounts create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |p: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(p))
            .map(|v| v.trim().to_owned())
    };
    (
        line("System ID: ").expect("a System ID line"),
        line("Password: "),
    )
}

struct Setup {
    smsc: Smsc,
    server: Server,
    dir: tempfile::TempDir,
    key: String,
    smpp_port: u16,
    port: u16,
}

impl Setup {
    fn env(&self) -> Vec<(&'static str, String)> {
        smpp_env(self.smpp_port)
    }
}

fn smpp_env(port: u16) -> Vec<(&'static str, String)> {
    vec![("HERMOD_SMPP_SERVER__LISTEN", format!("127.0.0.1:{port}"))]
}

/// A tenant with a sender and an SMPP account (`acme`/`s3cr3t` and `extra` options),
/// a server with the SMPP server on, and the SMSC it sends to.
async fn setup(extra: &[&str]) -> Setup {
    let smsc = start_smsc(SmscConfig {
        dlr_delay: Duration::from_millis(50),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = create_key_with_tenant(dir.path(), "smppco");
    assign_sender(dir.path(), "smppco", SENDER, true);
    let mut args = vec!["--system-id", SYSTEM_ID, "--password", PASSWORD];
    args.extend(extra);
    let (sid, pw) = smpp_account(dir.path(), "smppco", &args);
    assert_eq!((sid.as_str(), pw.as_deref()), (SYSTEM_ID, Some(PASSWORD)));
    let (smpp_port, port) = (free_port(), free_port());
    let server = Server::start_with_env(
        dir.path(),
        &smsc.url("hermod", "pw"),
        port,
        &smpp_env(smpp_port),
    );
    server.wait_healthy().await;
    Setup {
        smsc,
        server,
        dir,
        key,
        smpp_port,
        port,
    }
}

/// The pinned clients (scripts/test installs them): None, loudly, outside CI.
fn client(kind: &str) -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = match kind {
        "python" => std::env::var("HERMOD_SMPPLIB_PYTHON")
            .ok()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .map(|p| (p, root.join("tests/smpp/python/smpp_client.py"))),
        _ => root
            .join("tests/smpp/node/node_modules/smpp")
            .exists()
            .then(|| {
                (
                    PathBuf::from("node"),
                    root.join("tests/smpp/node/smpp_client.js"),
                )
            }),
    };
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the {kind} SMPP client is required in CI (bash scripts/test installs it)");
        }
        eprintln!(
            "\n!!! SKIPPED an SMPP server test: the {kind} client is not installed (bash scripts/test installs it) !!!\n"
        );
    }
    found
}

/// Runs node-smpp in `mode`; its last stdout line as JSON.
async fn node(s: &Setup, mode: &[&str]) -> Value {
    node_on(s.smpp_port, mode, &[]).await
}

async fn node_on(port: u16, mode: &[&str], env: &[(&str, &str)]) -> Value {
    let (program, script) = client("node").expect("checked by the caller");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(program)
            .arg(script)
            .args(mode)
            .env("SMPP_PORT", port.to_string())
            .env("SMPP_SYSTEM_ID", SYSTEM_ID)
            .env("SMPP_PASSWORD", PASSWORD)
            .env("SMPP_FROM", SENDER.trim_start_matches('+'))
            .env("SMPP_TO", CUSTOMER.trim_start_matches('+'))
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("node-smpp finished")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node-smpp {mode:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

/// A message by the id SMPP gave for it (its 32 hex digits).
async fn message(s: &Setup, id: &str) -> Value {
    assert_eq!(id.len(), 32, "{id}");
    get_message(&s.server.base, &s.key, &format!("msg_{id}")).await
}

#[tokio::test(flavor = "multi_thread")]
async fn smpplib_submits_in_every_encoding_and_concatenation_and_gets_receipts() {
    let Some((python, script)) = client("python") else {
        return;
    };
    let s = setup(&[]).await;
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(python)
            .arg(script)
            .args([
                "127.0.0.1",
                &s.smpp_port.to_string(),
                SYSTEM_ID,
                PASSWORD,
                SENDER.trim_start_matches('+'),
                CUSTOMER.trim_start_matches('+'),
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("smpplib finished")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "smpplib failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let st = &r["statuses"];
    for case in [
        "gsm",
        "latin1",
        "ucs2",
        "udh_gsm",
        "udh_ucs2",
        "sar",
        "payload",
        "data_sm",
        "binary",
        "binary_udh",
    ] {
        assert_eq!(st[case], 0, "{case}: {st}");
    }
    // ESME_RINVDSTADR, ESME_RINVSRCADR (not the tenant's sender), ESME_RINVDCS (JIS),
    // ESME_RINVEXPIRY; a PDU that does not decode gets generic_nack ESME_RINVCMDLEN and
    // the bind goes on.
    assert_eq!(st["bad_destination"], 0x0B);
    assert_eq!(st["foreign_sender"], 0x0A);
    assert_eq!(st["unknown_coding"], 0x104);
    assert_eq!(st["bad_validity"], 0x62);
    assert_eq!(st["malformed"], 0x02);
    assert_eq!(st["after_malformed"], 0);
    // Each submit (all parts of a concatenated one) is one message with the whole text,
    // and its receipt came back: esm_class 0x04, receipted_message_id, message_state.
    for m in r["sent"].as_array().unwrap() {
        let id = m["id"].as_str().unwrap();
        let got = message(&s, id).await;
        assert_eq!(got["text"], m["text"], "{}", m["case"]);
        assert_eq!(got["from"], SENDER);
        assert_eq!(got["to"], CUSTOMER);
        let receipt = &r["receipts"][id];
        assert_eq!(receipt["esm_class"], 4, "{}: {receipt}", m["case"]);
        assert_eq!(receipt["state"], 2);
        let text = receipt["text"].as_str().unwrap();
        assert!(
            text.starts_with(&format!("id:{id} sub:001 dlvrd:001 submit date:"))
                && text.contains(" stat:DELIVRD err:000 text:"),
            "{text}"
        );
    }
    // Binary messages went over SMS only, with their data_coding and bytes (the long
    // one in two parts with a concatenation header).
    let binary: Vec<(u8, Vec<u8>)> = s
        .smsc
        .submitted()
        .into_iter()
        .filter(|x| x.data_coding == 4)
        .map(|x| (x.esm_class, x.short_message))
        .collect();
    assert!(binary.contains(&(0, vec![1, 2, 0xFF])), "{binary:?}");
    let long: Vec<u8> = binary
        .iter()
        .filter(|(esm, _)| esm & 0x40 != 0)
        .flat_map(|(_, b)| b[6..].to_vec())
        .collect();
    assert_eq!(long, (0..200u8).collect::<Vec<u8>>());
    for case in ["binary", "binary_udh"] {
        let m = r["sent"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["case"] == case)
            .unwrap();
        let got = message(&s, m["id"].as_str().unwrap()).await;
        assert_eq!(got["channels"], serde_json::json!(["sms"]), "{got}");
    }
    // The concatenated submits went to the SMSC as one message each, split again.
    let sar = r["sent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["case"] == "sar")
        .unwrap();
    assert_eq!(
        message(&s, sar["id"].as_str().unwrap()).await["status"],
        "delivered"
    );
    // query_sm: the state of a delivered message, with its final date; unknown ids
    // ESME_RQUERYFAIL.
    let q = &r["query"];
    assert_eq!(q["status"], 0);
    assert_eq!(q["state"], 2);
    assert_eq!(q["final_date"].as_str().unwrap().len(), 16, "{q}");
    assert_eq!(q["unknown_status"], 0x67);
    let _ = (&s.smsc, &s.dir, s.port, s.env());
}

#[tokio::test(flavor = "multi_thread")]
async fn node_smpp_gets_receipts_on_a_separate_receiver_and_queries_cancels_replaces() {
    if client("node").is_none() {
        return;
    }
    let s = setup(&[]).await;
    let r = node(&s, &["separate"]).await;
    let ids: Vec<&str> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        let got: Vec<&Value> = r["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["id"] == *id)
            .collect();
        assert_eq!(got.len(), 1, "one receipt for {id}: {r}");
        assert_eq!(got[0]["state"], 2);
        // From the recipient to the submit's source.
        assert_eq!(got[0]["source"], CUSTOMER.trim_start_matches('+'));
        assert_eq!(got[0]["destination"], SENDER.trim_start_matches('+'));
        assert!(
            got[0]["text"]
                .as_str()
                .unwrap()
                .starts_with(&format!("id:{id} ")),
            "{r}"
        );
    }
    // A receiver bind may not submit: ESME_RINVBNDSTS.
    assert_eq!(r["receiver_submit"], 0x04);

    let o = node(&s, &["ops"]).await;
    assert_eq!(o["scheduled"]["status"], 0, "{o}");
    let id = o["scheduled"]["id"].as_str().unwrap();
    assert_eq!(o["query_scheduled"]["state"], 0, "SCHEDULED: {o}");
    assert_eq!(o["replace"], 0, "{o}");
    assert_eq!(o["cancel"], 0, "{o}");
    assert_eq!(o["query_canceled"]["state"], 4, "DELETED: {o}");
    // Replacing a message no longer scheduled: ESME_RREPLACEFAIL.
    assert_eq!(o["replace_canceled"], 0x13, "{o}");
    let m = message(&s, id).await;
    assert_eq!(m["status"], "canceled");
    assert_eq!(m["text"], "Replaced text");
    // submit_multi: one message per number, the bad one listed.
    assert_eq!(o["multi"]["status"], 0, "{o}");
    assert_eq!(o["multi"]["unsuccess"], serde_json::json!([["nope", 0x0B]]));
    let first = message(&s, o["multi"]["id"].as_str().unwrap()).await;
    assert_eq!(first["text"], "To several");
    assert_eq!(o["enquire_link"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_wait_for_a_receiver_bind_and_come_once() {
    if client("node").is_none() {
        return;
    }
    let s = setup(&[]).await;
    // A transmitter submits and leaves; the receipts have nowhere to go yet.
    let r = node(&s, &["submit", "4"]).await;
    let ids: Vec<String> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        wait_status(
            &s.server.base,
            &s.key,
            &format!("msg_{id}"),
            "delivered",
            30,
        )
        .await;
    }
    // A receiver binds later and gets each of them once.
    let got = node(&s, &["receive", "4"]).await;
    let mut seen: Vec<String> = got["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want, "{got}");
    // Acknowledged: a new bind gets nothing again.
    let again = node_on(s.smpp_port, &["receive", "1"], &[("SMPP_WAIT_S", "2")]).await;
    assert_eq!(again["receipts"], serde_json::json!([]), "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_messages_reach_the_accounts_receiver() {
    if client("node").is_none() {
        return;
    }
    let s = setup(&[]).await;
    let (program, script) = client("node").unwrap();
    let mut child = tokio::process::Command::new(program)
        .arg(script)
        .arg("mo")
        .env("SMPP_PORT", s.smpp_port.to_string())
        .env("SMPP_SYSTEM_ID", SYSTEM_ID)
        .env("SMPP_PASSWORD", PASSWORD)
        .env("SMPP_FROM", SENDER.trim_start_matches('+'))
        .env("SMPP_TO", CUSTOMER.trim_start_matches('+'))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = String::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.trim() == "READY" {
                assert!(
                    s.smsc.inject_mo(
                        "hermod",
                        CUSTOMER.trim_start_matches('+'),
                        SENDER.trim_start_matches('+'),
                        "Where is my order? 📦",
                        false,
                    ) > 0
                );
            } else {
                last = line;
            }
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the receiver finished");
    assert!(status.success());
    let v: Value = serde_json::from_str(&last).unwrap();
    let mo = &v["mo"][0];
    assert_eq!(mo["from"], CUSTOMER.trim_start_matches('+'), "{v}");
    assert_eq!(mo["to"], SENDER.trim_start_matches('+'));
    assert_eq!(mo["text"], "Where is my order? 📦");
    assert_eq!(mo["data_coding"], 8, "UCS-2 for text beyond GSM: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn submits_above_the_accounts_rate_are_throttled() {
    if client("node").is_none() {
        return;
    }
    let s = setup(&["--throughput", "5"]).await;
    let r = node(&s, &["throttle", "40"]).await;
    let st: Vec<u64> = r["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let ok = st.iter().filter(|x| **x == 0).count();
    let throttled = st.iter().filter(|x| **x == 0x58).count();
    assert_eq!(ok + throttled, 40, "only OK or ESME_RTHROTTLED: {st:?}");
    assert!((1..=10).contains(&ok), "about 5 taken: {st:?}");
    assert!(throttled >= 30, "{st:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_burst_every_answered_submit_is_sent_once_and_its_receipt_arrives() {
    if client("node").is_none() {
        return;
    }
    let mut s = setup(&[]).await;
    let (program, script) = client("node").unwrap();
    let mut child = tokio::process::Command::new(program)
        .arg(&script)
        .args(["burst", "3000"])
        .env("SMPP_PORT", s.smpp_port.to_string())
        .env("SMPP_SYSTEM_ID", SYSTEM_ID)
        .env("SMPP_PASSWORD", PASSWORD)
        .env("SMPP_FROM", SENDER.trim_start_matches('+'))
        .env("SMPP_TO", CUSTOMER.trim_start_matches('+'))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: HashMap<String, String> = HashMap::new();
    let mut killed = false;
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (id, dest) = rest.split_once(' ').unwrap();
                acked.insert(id.to_owned(), dest.to_owned());
                if acked.len() == 300 && !killed {
                    s.server.kill9();
                    killed = true;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the burst ended with the server");
    assert!(killed, "the server was killed mid-burst");
    assert!(acked.len() < 3000, "killed before the burst ended");
    s.server = Server::start_with_env(s.dir.path(), &s.smsc.url("hermod", "pw"), s.port, &s.env());
    s.server.wait_healthy().await;
    // Every answered submit is stored and sent; its receipt comes to a receiver bind.
    let want = acked.len().to_string();
    let got = node_on(s.smpp_port, &["receive", &want], &[("SMPP_WAIT_S", "120")]).await;
    let mut receipts: HashMap<String, usize> = HashMap::new();
    for r in got["receipts"].as_array().unwrap() {
        *receipts
            .entry(r["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let missing: Vec<&String> = acked
        .keys()
        .filter(|id| !receipts.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} answered without a receipt: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let twice: Vec<_> = receipts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "receipts twice: {twice:?}");
    let mut per_dest: HashMap<String, usize> = HashMap::new();
    for sub in s.smsc.submitted() {
        *per_dest.entry(sub.destination).or_default() += 1;
    }
    for dest in acked.values() {
        assert_eq!(per_dest.get(dest), Some(&1), "{dest} sent once");
    }
}

/// Raw protocol: interface versions, generic_nack for an unknown command, enquire_link,
/// bind refusals (password, network, bind limit), unbind.
#[tokio::test(flavor = "multi_thread")]
async fn binds_versions_and_unknown_commands() {
    use rusmpp::pdus::BindTransceiver;
    use rusmpp::tokio_codec::CommandCodec;
    use rusmpp::types::{AnyOctetString, COctetString};
    use rusmpp::values::InterfaceVersion;
    use rusmpp::{Command, CommandId, CommandStatus, Pdu};
    use std::str::FromStr;
    let s = setup(&["--max-binds", "1"]).await;
    let open = || async {
        let sock = tokio::net::TcpStream::connect(("127.0.0.1", s.smpp_port))
            .await
            .unwrap();
        tokio_util::codec::Framed::new(sock, CommandCodec::new())
    };
    let bind = |pw: &str, v: InterfaceVersion| {
        Command::new(
            CommandStatus::EsmeRok,
            1,
            Pdu::BindTransceiver(
                BindTransceiver::builder()
                    .system_id(COctetString::from_str(SYSTEM_ID).unwrap())
                    .password(COctetString::from_str(pw).unwrap())
                    .interface_version(v)
                    .build(),
            ),
        )
    };
    async fn next(
        f: &mut tokio_util::codec::Framed<tokio::net::TcpStream, CommandCodec>,
    ) -> Command {
        tokio::time::timeout(Duration::from_secs(10), f.next())
            .await
            .expect("an answer")
            .expect("open")
            .expect("decodes")
    }
    // A wrong password: refused.
    let mut c = open().await;
    c.send(bind("wrong", InterfaceVersion::Smpp3_4))
        .await
        .unwrap();
    assert_eq!(next(&mut c).await.status(), CommandStatus::EsmeRbindfail);
    // An unknown command before and after binding: generic_nack ESME_RINVCMDID.
    c.send(Command::new(
        CommandStatus::EsmeRok,
        7,
        Pdu::Other {
            command_id: CommandId::from(0x0000_0999u32),
            body: AnyOctetString::from_vec(vec![1, 2, 3]),
        },
    ))
    .await
    .unwrap();
    let nack = next(&mut c).await;
    assert_eq!(
        (nack.id(), nack.status(), nack.sequence_number()),
        (CommandId::GenericNack, CommandStatus::EsmeRinvcmdid, 7)
    );
    // SMPP 3.4: bound, and told the server's version.
    c.send(bind(PASSWORD, InterfaceVersion::Smpp3_4))
        .await
        .unwrap();
    let r = next(&mut c).await;
    assert_eq!(r.status(), CommandStatus::EsmeRok);
    match r.pdu() {
        Some(Pdu::BindTransceiverResp(b)) => {
            assert_eq!(b.sc_interface_version(), Some(InterfaceVersion::Smpp3_4))
        }
        other => panic!("{other:?}"),
    }
    c.send(Command::new(CommandStatus::EsmeRok, 8, Pdu::EnquireLink))
        .await
        .unwrap();
    assert_eq!(next(&mut c).await.id(), CommandId::EnquireLinkResp);
    // max_binds 1: a second bind of the account is refused while this one is open.
    let mut c2 = open().await;
    c2.send(bind(PASSWORD, InterfaceVersion::Smpp3_3OrEarlier(0x33)))
        .await
        .unwrap();
    assert_eq!(next(&mut c2).await.status(), CommandStatus::EsmeRbindfail);
    c.send(Command::new(CommandStatus::EsmeRok, 9, Pdu::Unbind))
        .await
        .unwrap();
    assert_eq!(next(&mut c).await.id(), CommandId::UnbindResp);
    // Once it unbound: an SMPP 3.3 client binds and gets no TLV (3.3 has none).
    let mut bound = None;
    for _ in 0..50 {
        let mut c3 = open().await;
        c3.send(bind(PASSWORD, InterfaceVersion::Smpp3_3OrEarlier(0x33)))
            .await
            .unwrap();
        let r = next(&mut c3).await;
        if r.status() == CommandStatus::EsmeRok {
            bound = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match bound.expect("bound after the first unbound").pdu() {
        Some(Pdu::BindTransceiverResp(b)) => assert_eq!(b.sc_interface_version(), None),
        other => panic!("{other:?}"),
    }
    // An account limited to another network cannot bind from here.
    smpp_account(
        s.dir.path(),
        "smppco",
        &["--system-id", SYSTEM_ID, "--network", "10.0.0.0/8"],
    );
    let mut c4 = open().await;
    c4.send(bind(PASSWORD, InterfaceVersion::Smpp3_4))
        .await
        .unwrap();
    assert_eq!(next(&mut c4).await.status(), CommandStatus::EsmeRbindfail);
}

/// examples/smpp/send.py (the README's and the guide's) as printed, with the pinned
/// smpplib: it sends and prints its receipt's id and stat.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_smpplib_example_sends_and_gets_its_receipt() {
    let Some((python, _)) = client("python") else {
        return;
    };
    let s = setup(&[]).await;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/smpp/send.py");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python)
            .arg(example)
            .env("SMPP_HOST", "127.0.0.1")
            .env("SMPP_PORT", s.smpp_port.to_string())
            .env("SMPP_SYSTEM_ID", SYSTEM_ID)
            .env("SMPP_PASSWORD", PASSWORD)
            .env("SMPP_SOURCE", SENDER.trim_start_matches('+'))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the example finished")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (id, stat) = stdout.trim().split_once(' ').expect("id and stat");
    assert_eq!(stat, "DELIVRD");
    assert_eq!(message(&s, id).await["text"], "Your order 1001 has shipped");
}

/// `listen_tls`: node-smpp over TLS (ssmpp://) trusting the test CA.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_submits_over_tls() {
    if client("node").is_none() {
        return;
    }
    let smsc = start_smsc(SmscConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = create_key_with_tenant(dir.path(), "smppco");
    assign_sender(dir.path(), "smppco", SENDER, true);
    smpp_account(
        dir.path(),
        "smppco",
        &["--system-id", SYSTEM_ID, "--password", PASSWORD],
    );
    let fixture = |n: &str| format!("{}/tests/fixtures/tls/{n}", env!("CARGO_MANIFEST_DIR"));
    let tls_port = free_port();
    let server = Server::start_with_env(
        dir.path(),
        &smsc.url("hermod", "pw"),
        free_port(),
        &[
            (
                "HERMOD_SMPP_SERVER__LISTEN_TLS",
                format!("127.0.0.1:{tls_port}"),
            ),
            ("HERMOD_SMPP_SERVER__TLS_CERT", fixture("server.pem")),
            ("HERMOD_SMPP_SERVER__TLS_KEY", fixture("server.key")),
        ],
    );
    server.wait_healthy().await;
    let ca = fixture("ca.pem");
    let r = node_on(tls_port, &["submit", "1"], &[("SMPP_CA", ca.as_str())]).await;
    let id = r["ids"][0].as_str().unwrap();
    let m = get_message(&server.base, &key, &format!("msg_{id}")).await;
    assert_eq!(m["text"], "Held receipt 0");
}

/// Deleting an account (`hermod smpp-accounts delete`) unbinds its open binds; a new bind
/// is refused.
#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_account_unbinds_it() {
    use rusmpp::pdus::BindTransceiver;
    use rusmpp::tokio_codec::CommandCodec;
    use rusmpp::types::COctetString;
    use rusmpp::{Command, CommandId, CommandStatus, Pdu};
    use std::str::FromStr;
    let s = setup(&[]).await;
    let bind = || {
        Command::new(
            CommandStatus::EsmeRok,
            1,
            Pdu::BindTransceiver(
                BindTransceiver::builder()
                    .system_id(COctetString::from_str(SYSTEM_ID).unwrap())
                    .password(COctetString::from_str(PASSWORD).unwrap())
                    .build(),
            ),
        )
    };
    let open = || async {
        let sock = tokio::net::TcpStream::connect(("127.0.0.1", s.smpp_port))
            .await
            .unwrap();
        tokio_util::codec::Framed::new(sock, CommandCodec::new())
    };
    let mut c = open().await;
    c.send(bind()).await.unwrap();
    let r = c.next().await.unwrap().unwrap();
    assert_eq!(r.status(), CommandStatus::EsmeRok);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["smpp-accounts", "delete", "--tenant", "smppco", SYSTEM_ID])
        .envs(backend_env(s.dir.path()))
        .env("HERMOD_DATA_DIR", s.dir.path())
        .env("HERMOD_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = tokio::time::timeout(Duration::from_secs(20), c.next())
        .await
        .expect("an unbind within the recheck")
        .unwrap()
        .unwrap();
    assert_eq!(r.id(), CommandId::Unbind);
    let mut c2 = open().await;
    c2.send(bind()).await.unwrap();
    let r = c2.next().await.unwrap().unwrap();
    assert_eq!(r.status(), CommandStatus::EsmeRbindfail);
}

/// A recipient who sent STOP: the submit is refused with the vendor status 0x400.
#[tokio::test(flavor = "multi_thread")]
async fn a_submit_to_an_opted_out_recipient_is_refused() {
    if client("node").is_none() {
        return;
    }
    let s = setup(&[]).await;
    assert_eq!(
        node(&s, &["throttle", "1"]).await["statuses"],
        serde_json::json!([0])
    );
    assert!(
        s.smsc.inject_mo(
            "hermod",
            CUSTOMER.trim_start_matches('+'),
            SENDER.trim_start_matches('+'),
            "STOP",
            false,
        ) > 0
    );
    let url = format!("{}/v1/opt-outs", s.server.base);
    eventually("the STOP recorded", Duration::from_secs(30), || async {
        let (_, v, _) = call(reqwest::Method::GET, &url, &s.key, None).await;
        v["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    assert_eq!(
        node(&s, &["throttle", "1"]).await["statuses"],
        serde_json::json!([0x400])
    );
}
