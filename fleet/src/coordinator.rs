//! Reboot coordination: who may reboot in a group, kept entirely in etcd.
//!
//! # Key layout
//!
//! Under the configured prefix `P` (default `/cairn-fleet/`), for group `G` and host `ID`:
//!
//! | key | lease | value (JSON) | meaning |
//! |---|---|---|---|
//! | `P groups/G/slot/ID` | yes, TTL `reboot_timeout` | `{"since": UNIX}` | `ID` holds a reboot slot |
//! | `P groups/G/rebooting/ID` | none | `{"since": UNIX, "lease": L}` | `ID` was granted a slot and has not reported steady state |
//! | `P groups/G/lost/ID` | none | `{"since": UNIX, "detected": UNIX}` | `ID`'s slot expired before it reported steady state |
//!
//! (`P groups/G/` and the rest are concatenated without spaces.)
//!
//! A grant writes `slot/ID` (on a fresh lease) and `rebooting/ID` in one transaction;
//! steady-state deletes both. So `rebooting/ID` without `slot/ID` can only mean that etcd
//! expired the lease while the host was rebooting: the host is **lost**. The next request to
//! the group (any host's pre-reboot or steady-state) turns it into a `lost/ID` record, in the
//! same transaction as its own change; `status` counts such hosts as lost before that too.
//! A group with at least `max_lost` lost hosts is **paused**: it grants nothing until
//! `cairn-fleet resume G` deletes its `lost/` records. Paused is not stored but derived, so
//! raising `max_lost` in the configuration also lets the group go on.
//!
//! # Why at most `slots` hosts hold a slot
//!
//! Every decision reads the whole group (`P groups/G/`) at one revision R, decides from
//! that snapshot, and writes in a transaction that succeeds only if no key in the group was
//! created or changed after R (etcd's range compare on `mod_revision`). Two coordinators that
//! read the same snapshot cannot both write: the second one's compare fails, and it reads
//! again. Keys deleted after R (a lease that expired) do not fail the compare; they only mean
//! the snapshot counted a holder too many, which errs on the side of granting less. The slot
//! count itself is never stored: it comes from the configuration of the coordinator that
//! decides, read on every request.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{Group, Settings};
use crate::etcd::{self, Etcd, Op};

/// How often a decision is retried when another coordinator changed the group under it.
const MAX_ATTEMPTS: u32 = 12;

/// What went wrong, in the terms the HTTP layer maps to statuses.
#[derive(Debug)]
pub enum Error {
    /// etcd could not be reached or has no quorum: nothing was granted.
    Etcd(etcd::Error),
    /// The group changed under every attempt; the client should try again.
    Contention(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Etcd(e) => write!(f, "{e}"),
            Error::Contention(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

impl From<etcd::Error> for Error {
    fn from(e: etcd::Error) -> Self {
        Error::Etcd(e)
    }
}

/// The answer to a pre-reboot request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreReboot {
    /// The host holds a slot (now, or already did).
    Granted {
        /// Whether it already held it.
        already: bool,
    },
    /// Every slot is taken.
    Full {
        /// The hosts holding them.
        holders: Vec<String>,
    },
    /// The group lost too many hosts and waits for `cairn-fleet resume`.
    Paused {
        /// The lost hosts.
        lost: Vec<String>,
    },
}

/// The answer to a steady-state request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SteadyState {
    /// The host's slot was given back.
    Released,
    /// The host held no slot (a repeated report, or one after a restart).
    NotHeld,
    /// The host's slot had expired before it reported: it is (and stays) counted lost.
    Lost,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SlotValue {
    since: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RebootingValue {
    since: u64,
    lease: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LostValue {
    since: u64,
    detected: u64,
}

/// A host holding a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// The host's id.
    pub id: String,
    /// When it was granted the slot (seconds since the Unix epoch).
    pub since: u64,
    /// Its etcd lease.
    pub lease: i64,
    /// Seconds until the lease expires, if `status` asked etcd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
}

/// A host counted lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostHost {
    /// The host's id.
    pub id: String,
    /// When it had been granted the slot it never gave back.
    pub since: u64,
    /// When a coordinator recorded it as lost; `None` while only `status` has seen it.
    pub detected: Option<u64>,
}

/// One group as read from etcd at one revision.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    revision: i64,
    slots: BTreeMap<String, Holder>,
    rebooting: BTreeMap<String, RebootingValue>,
    lost: BTreeMap<String, LostValue>,
}

impl Snapshot {
    /// Hosts granted a slot whose lease expired, not yet recorded as lost.
    fn newly_lost(&self) -> Vec<(&String, &RebootingValue)> {
        self.rebooting
            .iter()
            .filter(|(id, _)| !self.slots.contains_key(*id))
            .collect()
    }

    fn lost_count(&self) -> usize {
        self.lost.len() + self.newly_lost().len()
    }
}

/// The status of one group, for `cairn-fleet status`.
#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    /// The group's name.
    pub group: String,
    /// Slots configured.
    pub slots: u32,
    /// The lease TTL of a slot, in seconds.
    pub reboot_timeout_secs: u64,
    /// Lost hosts that pause the group.
    pub max_lost: u32,
    /// Hosts holding a slot.
    pub holders: Vec<Holder>,
    /// Hosts counted lost.
    pub lost: Vec<LostHost>,
    /// Whether the group grants nothing until `cairn-fleet resume`.
    pub paused: bool,
}

/// The coordinator: the etcd client and the key prefix.
#[derive(Debug, Clone)]
pub struct Coordinator {
    etcd: Etcd,
    prefix: String,
}

/// `unix` as an RFC 3339 time, for messages.
pub fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Coordinator {
    /// A coordinator on etcd from `settings`.
    pub fn new(settings: &Settings) -> Self {
        Coordinator {
            etcd: Etcd::new(settings.etcd.endpoints.clone(), settings.etcd.timeout),
            prefix: settings.etcd.prefix.clone(),
        }
    }

    /// The etcd client.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    fn group_prefix(&self, group: &str) -> Vec<u8> {
        format!("{}groups/{group}/", self.prefix).into_bytes()
    }

    fn key(&self, group: &str, kind: &str, id: &str) -> Vec<u8> {
        format!("{}groups/{group}/{kind}/{id}", self.prefix).into_bytes()
    }

    async fn snapshot(&self, group: &str) -> Result<Snapshot, Error> {
        let prefix = self.group_prefix(group);
        let range = self.etcd.range_prefix(&prefix).await?;
        let mut s = Snapshot {
            revision: range.revision,
            ..Snapshot::default()
        };
        for kv in range.kvs {
            let Some(rest) = kv.key.strip_prefix(prefix.as_slice()) else {
                continue;
            };
            let rest = String::from_utf8_lossy(rest);
            let Some((kind, id)) = rest.split_once('/') else {
                log::warn!(
                    "ignoring unexpected etcd key {:?}",
                    String::from_utf8_lossy(&kv.key)
                );
                continue;
            };
            let id = id.to_string();
            let bad = |e: serde_json::Error| {
                log::warn!(
                    "ignoring etcd key {:?} with an unreadable value: {e}",
                    String::from_utf8_lossy(&kv.key)
                )
            };
            match kind {
                "slot" => match serde_json::from_slice::<SlotValue>(&kv.value) {
                    Ok(v) => {
                        s.slots.insert(
                            id.clone(),
                            Holder {
                                id,
                                since: v.since,
                                lease: kv.lease,
                                expires_in: None,
                            },
                        );
                    }
                    // An unreadable slot still takes a slot: err on the side of fewer reboots.
                    Err(e) => {
                        bad(e);
                        s.slots.insert(
                            id.clone(),
                            Holder {
                                id,
                                since: 0,
                                lease: kv.lease,
                                expires_in: None,
                            },
                        );
                    }
                },
                "rebooting" => match serde_json::from_slice::<RebootingValue>(&kv.value) {
                    Ok(v) => {
                        s.rebooting.insert(id, v);
                    }
                    Err(e) => {
                        bad(e);
                        s.rebooting
                            .insert(id, RebootingValue { since: 0, lease: 0 });
                    }
                },
                "lost" => match serde_json::from_slice::<LostValue>(&kv.value) {
                    Ok(v) => {
                        s.lost.insert(id, v);
                    }
                    Err(e) => {
                        bad(e);
                        s.lost.insert(
                            id,
                            LostValue {
                                since: 0,
                                detected: 0,
                            },
                        );
                    }
                },
                _ => log::warn!(
                    "ignoring unexpected etcd key {:?}",
                    String::from_utf8_lossy(&kv.key)
                ),
            }
        }
        Ok(s)
    }

    /// The operations that record the snapshot's newly lost hosts.
    fn record_lost(&self, group: &str, snap: &Snapshot) -> Vec<Op> {
        let detected = now();
        let mut ops = Vec::new();
        for (id, r) in snap.newly_lost() {
            log::warn!(
                "group {group}: host {id} took a slot at {} and did not report steady state \
                 before its lease expired; counting it lost",
                rfc3339(r.since)
            );
            ops.push(Op::Delete {
                key: self.key(group, "rebooting", id),
                prefix: false,
            });
            let value = LostValue {
                since: r.since,
                detected,
            };
            ops.push(Op::Put {
                key: self.key(group, "lost", id),
                value: serde_json::to_vec(&value).unwrap_or_default(),
                lease: 0,
            });
        }
        ops
    }

    async fn backoff(attempt: u32) {
        // Spread racing coordinators apart: a few milliseconds, growing, with jitter from
        // the clock's nanoseconds (no need for a random number generator here).
        let jitter = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()) % 7);
        tokio::time::sleep(Duration::from_millis(
            u64::from(attempt.min(6)) * 4 + jitter,
        ))
        .await;
    }

    /// `POST /v1/pre-reboot` for host `id` in `group` (configured as `cfg`).
    pub async fn pre_reboot(&self, group: &str, cfg: &Group, id: &str) -> Result<PreReboot, Error> {
        let mut lease = None;
        let result = self.pre_reboot_attempts(group, cfg, id, &mut lease).await;
        let keep = matches!(result, Ok(PreReboot::Granted { already: false }));
        if let (Some(l), false) = (lease, keep) {
            // A lease granted for a transaction that did not happen: give it back now rather
            // than let it expire (it holds no key either way).
            if let Err(e) = self.etcd.lease_revoke(l).await {
                log::debug!("revoking unused lease {l}: {e}");
            }
        }
        result
    }

    async fn pre_reboot_attempts(
        &self,
        group: &str,
        cfg: &Group,
        id: &str,
        lease: &mut Option<i64>,
    ) -> Result<PreReboot, Error> {
        let prefix = self.group_prefix(group);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                Self::backoff(attempt).await;
            }
            let snap = self.snapshot(group).await?;
            if let Some(h) = snap.slots.get(id) {
                // On our own lease, the slot is the one this request wrote: an earlier
                // attempt's transaction was applied although its answer was lost (a member
                // timed out and the next one was asked). Then the lease must be kept.
                let ours = lease.is_some_and(|l| l == h.lease);
                return Ok(PreReboot::Granted { already: !ours });
            }
            let mut ops = self.record_lost(group, &snap);
            let lost = snap.lost_count();
            let answer = if lost >= cfg.max_lost as usize {
                let mut ids: Vec<String> = snap.lost.keys().cloned().collect();
                ids.extend(snap.newly_lost().into_iter().map(|(id, _)| id.clone()));
                ids.sort();
                PreReboot::Paused { lost: ids }
            } else if snap.slots.len() >= cfg.slots as usize {
                PreReboot::Full {
                    holders: snap.slots.keys().cloned().collect(),
                }
            } else {
                let l = match *lease {
                    Some(l) => l,
                    None => {
                        let l = self.etcd.lease_grant(cfg.reboot_timeout).await?;
                        *lease = Some(l);
                        l
                    }
                };
                let since = now();
                ops.push(Op::Put {
                    key: self.key(group, "slot", id),
                    value: serde_json::to_vec(&SlotValue { since }).unwrap_or_default(),
                    lease: l,
                });
                ops.push(Op::Put {
                    key: self.key(group, "rebooting", id),
                    value: serde_json::to_vec(&RebootingValue { since, lease: l })
                        .unwrap_or_default(),
                    lease: 0,
                });
                PreReboot::Granted { already: false }
            };
            if ops.is_empty() {
                return Ok(answer);
            }
            if self
                .etcd
                .txn_unchanged_since(&prefix, snap.revision, &ops)
                .await?
            {
                match &answer {
                    PreReboot::Granted { .. } => log::info!(
                        "group {group}: granted a reboot slot to {id} ({} of {} taken, lease {}s)",
                        snap.slots.len() + 1,
                        cfg.slots,
                        cfg.reboot_timeout.as_secs()
                    ),
                    PreReboot::Paused { lost } => log::warn!(
                        "group {group}: paused after {} lost host(s) ({}); run `cairn-fleet \
                         resume {group}` once they are looked after",
                        lost.len(),
                        lost.join(", ")
                    ),
                    PreReboot::Full { .. } => {}
                }
                return Ok(answer);
            }
            log::debug!("group {group}: changed during the decision for {id}; reading it again");
        }
        Err(Error::Contention(format!(
            "group {group} changed under {MAX_ATTEMPTS} attempts in a row (many hosts at once); \
             try again"
        )))
    }

    /// `POST /v1/steady-state` for host `id` in `group`.
    pub async fn steady_state(&self, group: &str, id: &str) -> Result<SteadyState, Error> {
        let prefix = self.group_prefix(group);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                Self::backoff(attempt).await;
            }
            let snap = self.snapshot(group).await?;
            let mut ops = self.record_lost(group, &snap);
            let holder = snap.slots.get(id).cloned();
            let answer = if holder.is_some() {
                ops.push(Op::Delete {
                    key: self.key(group, "slot", id),
                    prefix: false,
                });
                ops.push(Op::Delete {
                    key: self.key(group, "rebooting", id),
                    prefix: false,
                });
                SteadyState::Released
            } else if snap.lost.contains_key(id) || snap.rebooting.contains_key(id) {
                SteadyState::Lost
            } else {
                SteadyState::NotHeld
            };
            if !ops.is_empty()
                && !self
                    .etcd
                    .txn_unchanged_since(&prefix, snap.revision, &ops)
                    .await?
            {
                continue;
            }
            match answer {
                SteadyState::Released => {
                    log::info!("group {group}: {id} reported steady state; its slot is free");
                    if let Some(h) = holder {
                        if let Err(e) = self.etcd.lease_revoke(h.lease).await {
                            log::debug!("revoking lease {} of {id}: {e}", h.lease);
                        }
                    }
                }
                SteadyState::Lost => log::warn!(
                    "group {group}: {id} reported steady state after its slot had expired; \
                     it stays counted lost until `cairn-fleet resume {group}`"
                ),
                SteadyState::NotHeld => {
                    log::debug!("group {group}: {id} reported steady state holding no slot")
                }
            }
            return Ok(answer);
        }
        Err(Error::Contention(format!(
            "group {group} changed under {MAX_ATTEMPTS} attempts in a row; try again"
        )))
    }

    /// The state of `group` (configured as `cfg`); asks etcd how long each lease has left.
    pub async fn status(&self, group: &str, cfg: &Group) -> Result<GroupStatus, Error> {
        let snap = self.snapshot(group).await?;
        let mut holders = Vec::new();
        for h in snap.slots.values() {
            let mut h = h.clone();
            h.expires_in = self.etcd.lease_ttl(h.lease).await?;
            holders.push(h);
        }
        let mut lost: Vec<LostHost> = snap
            .lost
            .iter()
            .map(|(id, v)| LostHost {
                id: id.clone(),
                since: v.since,
                detected: Some(v.detected),
            })
            .collect();
        lost.extend(snap.newly_lost().into_iter().map(|(id, v)| LostHost {
            id: id.clone(),
            since: v.since,
            detected: None,
        }));
        lost.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(GroupStatus {
            group: group.to_string(),
            slots: cfg.slots,
            reboot_timeout_secs: cfg.reboot_timeout.as_secs(),
            max_lost: cfg.max_lost,
            paused: snap.lost_count() >= cfg.max_lost as usize,
            holders,
            lost,
        })
    }

    /// Forgets `group`'s lost hosts, so that it grants slots again; returns them.
    pub async fn resume(&self, group: &str) -> Result<Vec<String>, Error> {
        let prefix = self.group_prefix(group);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                Self::backoff(attempt).await;
            }
            let snap = self.snapshot(group).await?;
            let mut forgiven: Vec<String> = snap.lost.keys().cloned().collect();
            let mut ops = Vec::new();
            if !snap.lost.is_empty() {
                ops.push(Op::Delete {
                    key: format!("{}groups/{group}/lost/", self.prefix).into_bytes(),
                    prefix: true,
                });
            }
            for (id, _) in snap.newly_lost() {
                forgiven.push(id.clone());
                ops.push(Op::Delete {
                    key: self.key(group, "rebooting", id),
                    prefix: false,
                });
            }
            forgiven.sort();
            if ops.is_empty()
                || self
                    .etcd
                    .txn_unchanged_since(&prefix, snap.revision, &ops)
                    .await?
            {
                if !forgiven.is_empty() {
                    log::info!(
                        "group {group}: resumed; forgot lost host(s) {}",
                        forgiven.join(", ")
                    );
                }
                return Ok(forgiven);
            }
        }
        Err(Error::Contention(format!(
            "group {group} changed under {MAX_ATTEMPTS} attempts in a row; try again"
        )))
    }
}
