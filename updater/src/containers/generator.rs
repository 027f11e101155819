//! `cairn container generate`: the systemd generator (installed as
//! `/usr/lib/systemd/system-generators/cairn-container-generator`). For each declaration it
//! writes, into the generator's output directory, a `multi-user.target.wants` link to the
//! `cairn-container@.service` template and a drop-in with the declared `Restart=`. Generators
//! run before anything is mounted beyond `/` and must not fail the boot: a declaration that
//! does not parse is still wanted, so its unit fails with the file's error in the journal.

use std::path::Path;

use anyhow::{Context, Result};

use super::spec::{self, unit_of};

/// The template, as installed by the manifest.
const TEMPLATE: &str = "/usr/lib/systemd/system/cairn-container@.service";

/// Writes the links and drop-ins for the declarations in `dir` into `out`; returns the units.
pub fn generate(dir: &Path, out: &Path) -> Result<Vec<String>> {
    let wants = out.join("multi-user.target.wants");
    let mut units = Vec::new();
    for (name, parsed) in spec::load_all(dir) {
        let unit = unit_of(&name);
        if name.is_empty() || name.contains('/') || name.contains(char::is_whitespace) {
            log::warn!(
                "{}: skipped: not usable as a unit name",
                dir.join(&name).display()
            );
            continue;
        }
        std::fs::create_dir_all(&wants)
            .with_context(|| format!("cannot create {}", wants.display()))?;
        let link = wants.join(&unit);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(TEMPLATE, &link)
                .with_context(|| format!("cannot link {}", link.display()))?;
        }
        match parsed {
            Ok(s) => {
                let dropin = out.join(format!("{unit}.d"));
                std::fs::create_dir_all(&dropin)
                    .with_context(|| format!("cannot create {}", dropin.display()))?;
                let text = format!(
                    "# Written by cairn container generate from {}.\n[Service]\nRestart={}\n",
                    dir.join(format!("{name}.toml")).display(),
                    s.restart.systemd()
                );
                std::fs::write(dropin.join("50-cairn-restart.conf"), text)
                    .with_context(|| format!("cannot write into {}", dropin.display()))?;
            }
            Err(e) => log::error!("{e:#}"),
        }
        units.push(unit);
    }
    Ok(units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_declaration_is_wanted_with_its_restart_policy() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("containers");
        let out = d.path().join("out");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("web.toml"),
            "image = \"w\"\nrestart = \"on-failure\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("broken.toml"), "image = 1\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "not a declaration").unwrap();
        let units = generate(&dir, &out).unwrap();
        assert_eq!(
            units,
            [
                "cairn-container@broken.service",
                "cairn-container@web.service"
            ]
        );
        let link = out.join("multi-user.target.wants/cairn-container@web.service");
        assert_eq!(std::fs::read_link(link).unwrap(), Path::new(TEMPLATE));
        let dropin = out.join("cairn-container@web.service.d/50-cairn-restart.conf");
        assert!(std::fs::read_to_string(dropin)
            .unwrap()
            .contains("Restart=on-failure\n"));
        assert!(!out.join("cairn-container@broken.service.d").exists());
        assert!(generate(&d.path().join("none"), &out).is_ok());
    }
}
