//! `robots create|list|revoke`: robot accounts in the configuration's `store:`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use docker_token_core::display_chain;
use docker_token_store::robots::{Robot, RobotStore, parse_labels, validate_name};

use crate::config::FileConfig;

/// The longest robot lifetime `--expires` accepts (10 years).
const MAX_LIFETIME: Duration = Duration::from_secs(3650 * 86_400);

#[derive(Debug, clap::Subcommand)]
pub(crate) enum RobotsCommand {
    /// Create a robot account and print its secret (once) on standard output.
    Create {
        /// The robot's name (`a-z 0-9 . _ -`); it logs in as `robot$NAME`.
        name: String,
        /// The configuration whose `store:` holds the robots.
        #[arg(long, short)]
        config: PathBuf,
        /// Lifetime: `90d` (default), `12h`, `2w`, `3600s` or plain seconds; at most 3650 days.
        #[arg(long, default_value = "90d", value_parser = parse_lifetime)]
        expires: Duration,
        /// A label for the ACL, `key=value`; repeat for more values or keys.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// List the robot accounts (names, expiry, labels; never secrets).
    List {
        /// The configuration whose `store:` holds the robots.
        #[arg(long, short)]
        config: PathBuf,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke (delete) a robot account: its next token request fails.
    Revoke {
        /// The robot's name (with or without `robot$`).
        name: String,
        /// The configuration whose `store:` holds the robots.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// `90d`, `12h`, `30m`, `2w`, `3600s` or plain seconds.
pub(crate) fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| "expected a number with s, m, h, d or w (e.g. 90d)".to_owned())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err("the unit is s, m, h, d or w (e.g. 90d)".to_owned()),
    };
    let d = Duration::from_secs(n.saturating_mul(unit_secs));
    if d.is_zero() || d > MAX_LIFETIME {
        return Err("a lifetime is between 1 s and 3650 days".to_owned());
    }
    Ok(d)
}

/// `YYYY-MM-DD HH:MM:SS UTC` of Unix seconds (proleptic Gregorian calendar).
pub(crate) fn format_utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn open_store(config: &Path) -> Result<std::sync::Arc<dyn RobotStore>, String> {
    let origin = config.display().to_string();
    let file = FileConfig::read(config).map_err(|e| e.to_string())?;
    let Some(store) = &file.store else {
        return Err(format!(
            "{origin}: there is no store: section (robots live in store: {{redb: {{path: …}}}} or store: {{redis: {{url: …}}}})"
        ));
    };
    store
        .build()
        .map(|s| s.robots)
        .map_err(|e| format!("{origin}: store.{e}"))
}

pub(crate) fn run(command: RobotsCommand) -> ExitCode {
    let Some(runtime) = crate::cli::runtime() else {
        return ExitCode::from(1);
    };
    let result = runtime.block_on(async {
        match command {
            RobotsCommand::Create {
                name,
                config,
                expires,
                labels,
            } => create(&name, &config, expires, &labels).await,
            RobotsCommand::List { config, json } => list(&config, json).await,
            RobotsCommand::Revoke { name, config } => revoke(&name, &config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("docker-token-server robots: {e}");
            ExitCode::from(1)
        }
    }
}

async fn create(
    name: &str,
    config: &Path,
    lifetime: Duration,
    labels: &[String],
) -> Result<(), String> {
    validate_name(name).map_err(|e| e.to_string())?;
    let labels = parse_labels(labels).map_err(|e| e.to_string())?;
    let store = open_store(config)?;
    let (robot, secret) =
        Robot::generate(name, labels, SystemTime::now() + lifetime).map_err(|e| e.to_string())?;
    let account = robot.account();
    let expires = robot.expires_at;
    if !store
        .create_robot(robot)
        .await
        .map_err(|e| display_chain(&e))?
    {
        return Err(format!(
            "a robot named {name} exists already (revoke it first to replace it)"
        ));
    }
    let mut out = std::io::stdout().lock();
    // the secret alone on stdout, for scripts; the rest on stderr
    let _ = writeln!(out, "{}", secret.expose());
    eprintln!(
        "created {account}, valid until {}.\nThe secret above is shown once; log in with:\n  docker login -u '{account}' --password-stdin <registry>",
        format_utc(expires)
    );
    Ok(())
}

async fn list(config: &Path, json: bool) -> Result<(), String> {
    let store = open_store(config)?;
    let mut robots = store.list_robots().await.map_err(|e| display_chain(&e))?;
    robots.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<serde_json::Value> = robots
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "account": r.account(),
                    "created_at": r.created_at,
                    "expires_at": r.expires_at,
                    "labels": r.labels,
                })
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(list));
        return Ok(());
    }
    let _ = writeln!(out, "{:<30} {:<24} LABELS", "ACCOUNT", "EXPIRES");
    for r in &robots {
        let labels: Vec<String> = r
            .labels
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| format!("{k}={v}")))
            .collect();
        let _ = writeln!(
            out,
            "{:<30} {:<24} {}",
            r.account(),
            format_utc(r.expires_at),
            labels.join(",")
        );
    }
    Ok(())
}

async fn revoke(name: &str, config: &Path) -> Result<(), String> {
    let name = docker_token_store::robots::name_of_account(name).unwrap_or(name);
    validate_name(name).map_err(|e| e.to_string())?;
    let store = open_store(config)?;
    if store
        .delete_robot(name)
        .await
        .map_err(|e| display_chain(&e))?
    {
        println!("revoked robot${name}");
        Ok(())
    } else {
        Err(format!("there is no robot named {name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_and_dates() {
        assert_eq!(
            parse_lifetime("90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(
            parse_lifetime("12h").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(
            parse_lifetime("2w").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(parse_lifetime("3600").unwrap(), Duration::from_secs(3600));
        for bad in ["", "0d", "d", "5y", "-1d", "3651d", "99999999999999999999d"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_798_761_599), "2026-12-31 23:59:59 UTC");
    }
}
