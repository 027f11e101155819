//! The coordinator on a 3-member etcd cluster: 5 hosts, one group of 2 slots; slots are
//! counted in etcd (with etcdctl) after every step.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{cli, holders_at, write_config, Etcd, Fleet, Server};

const G: &str = "default";

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hosts_two_slots_on_a_three_member_cluster() {
    let mut etcd = Etcd::start(3);
    let all = etcd.endpoints().join(",");
    let config = etcd.dir().join("fleet.toml");
    write_config(&config, &etcd.endpoints(), G, 2, "5s", "");
    let server = Server::start(&config, "server");
    let a = server.addr.clone();
    let fleet = Fleet::new();
    let holders = || {
        let h = holders_at(&all, G, false);
        assert!(h.len() <= 2, "more than 2 holders in etcd: {h:?}");
        h
    };

    // Two slots: h1 and h2 get one, h3 waits; asking again is idempotent.
    assert_eq!(fleet.pre(&a, G, "h1").await.status, 200);
    assert_eq!(holders(), set(&["h1"]));
    assert_eq!(fleet.pre(&a, G, "h2").await.status, 200);
    assert_eq!(holders(), set(&["h1", "h2"]));
    let r = fleet.pre(&a, G, "h3").await;
    assert_eq!((r.status, r.kind().as_str()), (409, "no_slot"), "{r:?}");
    assert_eq!(holders(), set(&["h1", "h2"]));
    assert_eq!(fleet.pre(&a, G, "h1").await.status, 200);
    assert_eq!(holders(), set(&["h1", "h2"]));

    // steady-state frees the slot (twice is fine, and so is a host that held none).
    assert_eq!(fleet.steady(&a, G, "h1").await.status, 200);
    assert_eq!(holders(), set(&["h2"]));
    assert_eq!(fleet.steady(&a, G, "h1").await.status, 200);
    assert_eq!(fleet.steady(&a, G, "h5").await.status, 200);
    assert_eq!(fleet.pre(&a, G, "h3").await.status, 200);
    assert_eq!(holders(), set(&["h2", "h3"]));
    assert_eq!(fleet.pre(&a, G, "h4").await.status, 409);
    assert_eq!(fleet.steady(&a, G, "h3").await.status, 200);
    assert_eq!(holders(), set(&["h2"]));

    // `status` shows the holder and since when.
    let (ok, out, err) = cli(&config, &["status", "--json"]);
    assert!(ok, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    let g = &s["groups"][0];
    assert_eq!(
        (g["slots"].as_u64(), g["paused"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(g["holders"][0]["id"], "h2");
    assert!(g["holders"][0]["since"].as_u64().unwrap() > 1_600_000_000);

    // h2 never reports steady state: after its 5 s lease etcd frees its slot, and the next
    // request counts it lost; max_lost = 1 pauses the group.
    let start = Instant::now();
    while !holders().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "h2's lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (ok, out, _) = cli(&config, &["status", "--json"]);
    assert!(ok);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["groups"][0]["lost"][0]["id"], "h2");
    assert_eq!(s["groups"][0]["paused"], true);
    let r = fleet.pre(&a, G, "h4").await;
    assert_eq!(
        (r.status, r.kind().as_str()),
        (409, "group_paused"),
        "{r:?}"
    );
    assert!(r.body.contains("h2"), "{r:?}");
    assert_eq!(holders(), set(&[]));
    let (ok, out, _) = cli(&config, &["status"]);
    assert!(
        ok && out.contains("PAUSED") && out.contains("lost   h2"),
        "{out}"
    );

    // resume lets the group go on.
    let (ok, out, err) = cli(&config, &["resume", G, "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["forgotten"], serde_json::json!(["h2"]));
    assert_eq!(fleet.pre(&a, G, "h4").await.status, 200);
    assert_eq!(fleet.pre(&a, G, "h5").await.status, 200);
    assert_eq!(holders(), set(&["h4", "h5"]));

    // The slot count comes from the configuration on every request (not frozen at first use).
    write_config(&config, &etcd.endpoints(), G, 3, "5s", "");
    assert_eq!(fleet.pre(&a, G, "h1").await.status, 200);
    assert_eq!(holders_at(&all, G, false), set(&["h1", "h4", "h5"]));
    assert_eq!(fleet.steady(&a, G, "h1").await.status, 200);
    write_config(&config, &etcd.endpoints(), G, 2, "5s", "");
    assert_eq!(fleet.pre(&a, G, "h1").await.status, 409);
    assert_eq!(holders(), set(&["h4", "h5"]));

    assert_eq!(fleet.steady(&a, G, "h4").await.status, 200);
    assert_eq!(fleet.steady(&a, G, "h5").await.status, 200);
    assert_eq!(holders(), set(&[]));

    // One member down (the first endpoint the server tries): coordination goes on. (Slots
    // were given back first: an election may take longer than a short lease.)
    etcd.kill(0);
    etcd.wait_healthy(&[1, 2], Duration::from_secs(20));
    let live = format!("{},{}", etcd.endpoint(1), etcd.endpoint(2));
    assert_eq!(fleet.pre(&a, G, "h1").await.status, 200);
    assert_eq!(fleet.pre(&a, G, "h3").await.status, 200);
    assert_eq!(holders_at(&live, G, false), set(&["h1", "h3"]));
    assert_eq!(fleet.pre(&a, G, "h4").await.status, 409);
    assert_eq!(fleet.steady(&a, G, "h3").await.status, 200);
    assert_eq!(fleet.steady(&a, G, "h1").await.status, 200);
    assert_eq!(holders_at(&live, G, false), set(&[]));

    // Two members down: no quorum, so the server fails closed.
    etcd.kill(1);
    let last = etcd.endpoint(2);
    for id in ["h2", "h3"] {
        let r = fleet.pre(&a, G, id).await;
        assert_eq!(
            (r.status, r.kind().as_str()),
            (503, "etcd_unavailable"),
            "{r:?}"
        );
    }
    assert_eq!(
        holders_at(&last, G, true),
        set(&[]),
        "granted without quorum"
    );
    let (ok, _, err) = cli(&config, &["status"]);
    assert!(!ok && err.contains("etcd is unavailable"), "{err}");

    // They come back: it works again.
    etcd.restart(0);
    etcd.restart(1);
    etcd.wait_healthy(&[0, 1, 2], Duration::from_secs(30));
    assert_eq!(fleet.pre(&a, G, "h2").await.status, 200);
    assert_eq!(holders(), set(&["h2"]));
    assert_eq!(fleet.steady(&a, G, "h2").await.status, 200);
    assert_eq!(holders(), set(&[]));
    drop(server);
}
