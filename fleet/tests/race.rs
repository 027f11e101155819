//! Two `cairn-fleet serve` processes on the same etcd, many hosts asking at once: never more
//! than `slots` holders, at any revision of the store.

mod common;

use std::collections::BTreeSet;

use common::{holders_at, holders_count_at_revision, revision, write_config, Etcd, Fleet, Server};

const G: &str = "racers";
const SLOTS: usize = 2;
const HOSTS: usize = 24;
const ROUNDS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_coordinators_racing_never_grant_more_than_the_slots() {
    let etcd = Etcd::start(1);
    let eps = etcd.endpoints().join(",");
    let config = etcd.dir().join("fleet.toml");
    write_config(&config, &etcd.endpoints(), G, SLOTS as u32, "10m", "");
    let servers = [
        Server::start(&config, "server-a"),
        Server::start(&config, "server-b"),
    ];
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    let fleet = Fleet::new();
    let first_revision = revision(&eps);
    let mut total_granted = 0;

    for round in 0..ROUNDS {
        // Every host asks both coordinators at once.
        let mut tasks = Vec::new();
        for h in 0..HOSTS {
            for (s, addr) in addrs.iter().enumerate() {
                let (fleet, addr) = (fleet.clone(), addr.clone());
                let id = format!("r{round}-h{h}");
                tasks.push(tokio::spawn(async move {
                    let a = fleet.pre(&addr, G, &id).await;
                    (id, s, a)
                }));
            }
        }
        let mut granted = BTreeSet::new();
        let (mut full, mut busy) = (0, 0);
        for t in tasks {
            let (id, _, a) = t.await.unwrap();
            match a.status {
                200 => {
                    granted.insert(id);
                }
                409 => {
                    assert_eq!(a.kind(), "no_slot", "{a:?}");
                    full += 1;
                }
                503 => {
                    assert_eq!(a.kind(), "contention", "{a:?}");
                    busy += 1;
                }
                _ => panic!("unexpected answer {a:?}"),
            }
        }
        eprintln!(
            "round {round}: {} granted, {full} told no slot, {busy} told to retry",
            granted.len()
        );
        let held = holders_at(&eps, G, false);
        assert_eq!(
            held, granted,
            "round {round}: etcd and the answers disagree"
        );
        assert!(
            !granted.is_empty() && granted.len() <= SLOTS,
            "round {round}: granted {granted:?}"
        );
        total_granted += granted.len();
        for id in &granted {
            assert_eq!(fleet.steady(&addrs[0], G, id).await.status, 200);
        }
        assert!(holders_at(&eps, G, false).is_empty());
    }

    // Every revision the race went through, read back from etcd's history.
    let last_revision = revision(&eps);
    eprintln!("checking revisions {first_revision}..={last_revision}");
    for rev in first_revision..=last_revision {
        let n = holders_count_at_revision(&eps, G, rev);
        assert!(n <= SLOTS as i64, "{n} holders at revision {rev}");
    }
    assert!(total_granted >= ROUNDS);
    for mut s in servers {
        assert!(s.alive(), "{}", s.log());
    }
}
