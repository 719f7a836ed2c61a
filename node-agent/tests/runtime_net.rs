//! Local networking: a netns per box on a bridge, egress NAT, and names within and across
//! projects that follow boxes as they stop, resume and change address.
#![allow(clippy::unwrap_used)]

mod rtkit;

use forkr_node_agent::runtime::BoxSpec;
use rtkit::{Rt, sh, wait_until};

/// The address `name` resolves to inside the box, through the C library (bash's /dev/tcp
/// would need a listener; busybox's nslookup bypasses /etc/hosts).
fn resolve(pid: i32, name: &str) -> Option<String> {
    let out = sh(pid, &format!("ping -c1 -W1 {name} 2>&1 | head -1"));
    let line = out.stdout;
    let start = line.find('(')? + 1;
    let end = line[start..].find(')')? + start;
    Some(line[start..end].to_string())
}

#[test]
fn boxes_get_addresses_names_and_egress() {
    let rt = Rt::with_network();
    let db = rt.boot(&BoxSpec::new("p", "db"));
    let web = rt.boot(&BoxSpec::new("p", "web"));
    let api = rt.boot(&BoxSpec::new("q", "api"));
    let home = rt.boot(&BoxSpec::new("default", "home"));
    let (db_ip, api_ip, home_ip) = (
        db.ip.unwrap().to_string(),
        api.ip.unwrap().to_string(),
        home.ip.unwrap().to_string(),
    );
    let web_pid = web.pid.unwrap();
    assert_ne!(db.ip, web.ip);

    // Its own interface and address, not the host's.
    let out = sh(web_pid, "ip -4 -o addr show eth0");
    assert!(out.stdout.contains(&web.ip.unwrap().to_string()), "{out:?}");

    // <box> in the same project, <box>.<other>, <box>.default; and the search settings.
    assert_eq!(resolve(web_pid, "db").as_deref(), Some(db_ip.as_str()));
    assert_eq!(resolve(web_pid, "api.q").as_deref(), Some(api_ip.as_str()));
    assert_eq!(
        resolve(web_pid, "home.default").as_deref(),
        Some(home_ip.as_str())
    );
    assert_eq!(resolve(web_pid, "api"), None, "bare names are per project");
    let out = sh(web_pid, "cat /etc/resolv.conf");
    assert!(
        out.stdout
            .starts_with("search p.forks forks p\noptions ndots:1\n"),
        "{out:?}"
    );
    let api_pid = api.pid.unwrap();
    assert_eq!(resolve(api_pid, "db.p").as_deref(), Some(db_ip.as_str()));
    assert_eq!(resolve(api_pid, "api").as_deref(), Some(api_ip.as_str()));

    // Box to box over TCP, any port, no publishing.
    let db_pid = db.pid.unwrap();
    forkr_node_agent::exec::spawn_background(
        &forkr_node_agent::exec::Target::new(db_pid),
        &forkr_node_agent::exec::ExecRequest {
            args: vec!["echo pong | nc -l -p 5432".into()],
            sh: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(wait_until(10, || {
        sh(web_pid, "nc db 5432 </dev/null").stdout == "pong\n"
    }));

    // Egress: routed through the bridge with NAT to the host's addresses.
    let gw = rt.rt.network().unwrap().gateway().to_string();
    assert_eq!(
        sh(web_pid, &format!("ping -c1 -W2 {gw} >/dev/null && echo ok")).stdout,
        "ok\n"
    );
    let host_ip = std::process::Command::new("ip")
        .args(["-4", "-o", "route", "get", "1.1.1.1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&host_ip.stdout).into_owned();
    if let Some(src) = text.split_whitespace().skip_while(|w| *w != "src").nth(1) {
        assert_eq!(
            sh(
                web_pid,
                &format!("ping -c1 -W2 {src} >/dev/null && echo ok")
            )
            .stdout,
            "ok\n",
            "host address {src} unreachable"
        );
    }
    let nat = std::process::Command::new("iptables")
        .args(["-t", "nat", "-S", "POSTROUTING"])
        .output()
        .unwrap();
    let cidr = format!("{}/24", rt.cfg.network.as_ref().unwrap().subnet);
    assert!(String::from_utf8_lossy(&nat.stdout).contains(&format!("-s {cidr}")));
}

#[test]
fn names_follow_boxes_across_stop_resume_and_new_addresses() {
    let rt = Rt::with_network();
    let db = rt.boot(&BoxSpec::new("p", "db"));
    let web = rt.boot(&BoxSpec::new("p", "web")).pid.unwrap();
    let first = db.ip.unwrap().to_string();
    assert_eq!(resolve(web, "db").as_deref(), Some(first.as_str()));

    rt.rt.stop("p", "db").unwrap();
    assert_eq!(resolve(web, "db"), None, "a stopped box has no name");
    // Someone else takes the old address; db comes back on a new one.
    rt.boot(&BoxSpec::new("p", "squatter"));
    let again = rt.rt.resume("p", "db").unwrap().ip.unwrap().to_string();
    assert_ne!(again, first);
    assert_eq!(resolve(web, "db").as_deref(), Some(again.as_str()));
    assert_eq!(resolve(web, "squatter").as_deref(), Some(first.as_str()));
    // A box started later in another project sees the earlier ones.
    let late = rt.boot(&BoxSpec::new("q", "late")).pid.unwrap();
    assert_eq!(resolve(late, "db.p").as_deref(), Some(again.as_str()));

    // An agent restart keeps running boxes, their addresses and their names.
    let mut rt = rt;
    rt.restart();
    let st = rt.rt.status("p", "db").unwrap();
    assert_eq!(st.ip.map(|ip| ip.to_string()), Some(again.clone()));
    assert_eq!(resolve(web, "db").as_deref(), Some(again.as_str()));
    rt.rt.stop("p", "db").unwrap();
    assert_eq!(resolve(late, "db.p"), None);
}
