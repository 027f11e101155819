//! What a host follows: an OSTree remote and a ref on it (`remote:ref`, libostree's
//! "refspec"), read from the deployment's origin file and adjusted by the configuration.

use std::fmt;

use anyhow::{bail, Context, Result};
use cairn_release::osref::OsRef;

use crate::host::sysroot::Host;

/// `[source]` of the configuration: what to follow instead of what the origin says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The OSTree remote to pull from instead of the origin's.
    pub remote: Option<String>,
    /// Fetch from this URL instead of the remote's configured one.
    pub url: Option<String>,
    /// Follow this stream (last component of the ref) instead of the origin's.
    pub stream: Option<String>,
}

/// A remote and a ref on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The OSTree remote name in the sysroot's repository.
    pub remote: String,
    /// The ref, e.g. `cairn/bookworm/x86_64/stable`.
    pub ref_: String,
    /// A URL to fetch from instead of the remote's configured one.
    pub url_override: Option<String>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.remote, self.ref_)
    }
}

impl Source {
    /// Parses `remote:ref`.
    pub fn parse_refspec(refspec: &str) -> Result<Self> {
        match refspec.split_once(':') {
            Some((remote, ref_)) if !remote.is_empty() && !ref_.is_empty() => Ok(Source {
                remote: remote.to_string(),
                ref_: ref_.to_string(),
                url_override: None,
            }),
            _ => bail!(
                "origin refspec {refspec:?} names no remote (expected REMOTE:REF); \
                 use `cairn rebase REMOTE:REF` to set one"
            ),
        }
    }

    /// `remote:ref`, as origin files and `ostree` spell it.
    pub fn refspec(&self) -> String {
        self.to_string()
    }

    /// What the host follows now: the merge deployment's origin, with the configured remote,
    /// URL and stream applied.
    pub fn for_host(host: &Host, overrides: &Overrides) -> Result<Self> {
        let merge = host.merge_deployment().with_context(|| {
            format!(
                "stateroot {:?} has no deployment to update (deploy one first)",
                host.osname()
            )
        })?;
        let refspec = merge.refspec.with_context(|| {
            format!(
                "deployment {} ({}) has no origin refspec",
                merge.index, merge.commit
            )
        })?;
        let mut source = Source::parse_refspec(&refspec)?;
        source.apply(overrides)?;
        Ok(source)
    }

    /// The source `cairn rebase TARGET` moves to. TARGET is `remote:ref`, a full ref (same
    /// remote), or a bare stream name such as `testing` (same OS, suite and arch).
    pub fn rebase_target(current: &Source, target: &str, overrides: &Overrides) -> Result<Self> {
        let mut source = if target.contains(':') {
            Source::parse_refspec(target)?
        } else if target.contains('/') {
            Source {
                remote: current.remote.clone(),
                ref_: target.to_string(),
                url_override: None,
            }
        } else {
            let mut r: OsRef = current.ref_.parse().with_context(|| {
                format!(
                    "the current ref {:?} has no stream to replace",
                    current.ref_
                )
            })?;
            r.stream = target.to_string();
            Source {
                remote: current.remote.clone(),
                ref_: r.to_string(),
                url_override: None,
            }
        };
        source
            .ref_
            .parse::<OsRef>()
            .with_context(|| format!("cannot rebase to {target:?}"))?;
        source.url_override = overrides.url.clone();
        if source.remote == current.remote {
            source.url_override = current.url_override.clone();
        }
        Ok(source)
    }

    fn apply(&mut self, overrides: &Overrides) -> Result<()> {
        if let Some(remote) = &overrides.remote {
            self.remote = remote.clone();
        }
        self.url_override = overrides.url.clone();
        if let Some(stream) = &overrides.stream {
            let mut r: OsRef = self.ref_.parse().with_context(|| {
                format!(
                    "the configuration sets stream {stream:?} but the origin ref {:?} is not a Cairn ref",
                    self.ref_
                )
            })?;
            if &r.stream != stream {
                log::debug!(
                    "following stream {stream:?} from the configuration instead of {:?}",
                    r.stream
                );
                r.stream = stream.clone();
                self.ref_ = r.to_string();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(s: &str) -> Source {
        Source::parse_refspec(s).unwrap()
    }

    #[test]
    fn refspecs_need_a_remote() {
        assert_eq!(src("origin:cairn/bookworm/x86_64/stable").remote, "origin");
        assert!(Source::parse_refspec("cairn/bookworm/x86_64/stable").is_err());
        assert!(Source::parse_refspec(":x").is_err());
    }

    #[test]
    fn rebase_targets() {
        let cur = src("origin:cairn/bookworm/x86_64/stable");
        let cfg = Overrides::default();
        let t = Source::rebase_target(&cur, "testing", &cfg).unwrap();
        assert_eq!(t.refspec(), "origin:cairn/bookworm/x86_64/testing");
        let t = Source::rebase_target(&cur, "cairn/trixie/x86_64/stable", &cfg).unwrap();
        assert_eq!(t.refspec(), "origin:cairn/trixie/x86_64/stable");
        let t = Source::rebase_target(&cur, "mirror:cairn/bookworm/x86_64/stable", &cfg).unwrap();
        assert_eq!(t.remote, "mirror");
        assert!(Source::rebase_target(&cur, "not/a-ref", &cfg).is_err());
    }

    #[test]
    fn configured_stream_replaces_the_origin_stream() {
        let mut s = src("origin:cairn/bookworm/x86_64/stable");
        let cfg = Overrides {
            stream: Some("testing".into()),
            remote: Some("mirror".into()),
            ..Overrides::default()
        };
        s.apply(&cfg).unwrap();
        assert_eq!(s.refspec(), "mirror:cairn/bookworm/x86_64/testing");
    }
}
