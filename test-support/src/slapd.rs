//! A throwaway OpenLDAP (`slapd`) on free loopback ports, owned by the test (`peers.md` §2).
//!
//! [`Slapd::start`] writes a test CA and server certificate (with `openssl`), a static
//! `slapd.conf` (mdb, memberOf + refint overlays, TLS), loads the people with `slapadd` and the
//! groups with `ldapadd` through the running server (so memberOf is maintained), and runs
//! `slapd -d 0` in the foreground as a child [`Process`]. It listens on
//! `ldap://127.0.0.1:<ldap_port>` (StartTLS available) and `ldaps://127.0.0.1:<ldaps_port>`.
//! [`Slapd::stop`] and [`Slapd::start_again`] restart it on the same ports with the same data.
//!
//! | entry | password | groups (groupOfNames) | posixGroup memberUid |
//! |---|---|---|---|
//! | `cn=readonly,dc=example,dc=org` (service account) | `readonlypw` | empty | – |
//! | `uid=alice,ou=people,…` | `alicepw` | dev, ops | dev, ops |
//! | `uid=bob,ou=people,…` | `bobpw` | dev | dev |
//! | `uid=carol,ou=people,…` | `carolpw` | – | – |
//! | `uid=dave (contractor),ou=people,…` | `davepw` | – | – |
//! | `cn=Doe\, John,ou=people,…` (uid `jdoe`) | `jdoepw` | dev | – |
//!
//! Anonymous search is refused; any bound user may read everything but `userPassword`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Process, TempDir, free_port, require_binary, run, wait_for_port, workdir};

/// Whether every thread of `pid` is in the stopped state (`T`), per /proc.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // the state follows the parenthesised command name
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if state != Some('T') && state != Some('t') {
            return false;
        }
        any = true;
    }
    any
}

/// The directory suffix.
pub const SUFFIX: &str = "dc=example,dc=org";
/// The rootdn.
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
/// The rootdn's password.
pub const ADMIN_PW: &str = "adminpw";
/// The service account for search+bind.
pub const SERVICE_DN: &str = "cn=readonly,dc=example,dc=org";
/// The service account's password.
pub const SERVICE_PW: &str = "readonlypw";
/// Where the people are.
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";

const INSTALL: &str = "apt-get install slapd ldap-utils";

/// A running (or stopped) test slapd. Killed and its directory removed on drop.
#[derive(Debug)]
pub struct Slapd {
    /// Port of `ldap://` (plain, StartTLS-capable).
    pub ldap_port: u16,
    /// Port of `ldaps://`.
    pub ldaps_port: u16,
    dir: TempDir,
    slapd: PathBuf,
    process: Option<Process>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let bin = require_binary("openssl", "apt-get install openssl");
    let out = run(
        Command::new(bin).args(args).current_dir(dir),
        Duration::from_secs(30),
    );
    assert!(out.success, "openssl {args:?} failed: {}", out.stderr);
}

fn hash(password: &str) -> String {
    let bin = require_binary("slappasswd", INSTALL);
    let out = run(
        Command::new(bin).args(["-h", "{SSHA}", "-s", password]),
        Duration::from_secs(10),
    );
    assert!(out.success, "slappasswd failed: {}", out.stderr);
    out.stdout.trim().to_owned()
}

/// A CA and a leaf for `localhost`/`127.0.0.1` signed by it (CA:FALSE, so rustls accepts it),
/// plus an unrelated CA for negative tests. Keys stay in the temporary directory.
pub(crate) fn make_tls(tls: &Path) {
    std::fs::create_dir_all(tls).expect("create tls dir");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for ca in ["ca", "wrong-ca"] {
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        let (key, crt, subj) = (
            format!("{ca}.key"),
            format!("{ca}.crt"),
            format!("/CN=docker-token {ca}"),
        );
        args.extend(["-days", "2", "-subj", &subj, "-keyout", &key, "-out", &crt]);
        openssl(tls, &args);
    }
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    openssl(tls, &args);
    std::fs::write(
        tls.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write ext.cnf");
    openssl(
        tls,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    );
}

fn config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"include         /etc/ldap/schema/core.schema
include         /etc/ldap/schema/cosine.schema
include         /etc/ldap/schema/inetorgperson.schema
include         /etc/ldap/schema/nis.schema
pidfile         {d}/slapd.pid
argsfile        {d}/slapd.args
modulepath      /usr/lib/ldap
moduleload      back_mdb
moduleload      memberof
moduleload      refint
loglevel        none
TLSCACertificateFile  {d}/tls/ca.crt
TLSCertificateFile    {d}/tls/server.crt
TLSCertificateKeyFile {d}/tls/server.key

database        mdb
maxsize         67108864
suffix          "{SUFFIX}"
rootdn          "{ADMIN_DN}"
rootpw          {rootpw}
directory       {d}/db
index           objectClass eq
index           uid,cn,mail,memberUid,member eq
overlay         memberof
memberof-group-oc     groupOfNames
memberof-member-ad    member
memberof-memberof-ad  memberOf
memberof-refint       TRUE
overlay         refint
refint_attributes member
access to attrs=userPassword
        by self write
        by anonymous auth
        by * none
access to *
        by users read
        by anonymous auth
"#,
        rootpw = hash(ADMIN_PW)
    )
}

fn people() -> String {
    let person = |dn: &str, extra: &str, pw: &str| {
        format!(
            "dn: {dn}\nobjectClass: inetOrgPerson\n{extra}userPassword: {}\n\n",
            hash(pw)
        )
    };
    let mut out = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example Org\n\n\
         dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: ou=posixgroups,{SUFFIX}\nobjectClass: organizationalUnit\nou: posixgroups\n\n\
         dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: readonly\n\
         userPassword: {}\n\n",
        hash(SERVICE_PW)
    );
    let posix = |uid: &str, n: u32| {
        // objectClass values stay together: slapadd rejects them split around other attributes
        format!(
            "objectClass: posixAccount\nuid: {uid}\nuidNumber: {n}\ngidNumber: {n}\nhomeDirectory: /home/{uid}\n"
        )
    };
    out += &person(
        &format!("uid=alice,{PEOPLE}"),
        &format!(
            "{}cn: Alice Liddell\nsn: Liddell\nmail: alice@example.org\n",
            posix("alice", 10001)
        ),
        "alicepw",
    );
    out += &person(
        &format!("uid=bob,{PEOPLE}"),
        &format!(
            "{}cn: Bob Builder\nsn: Builder\nmail: bob@example.org\n",
            posix("bob", 10002)
        ),
        "bobpw",
    );
    out += &person(
        &format!("uid=carol,{PEOPLE}"),
        "uid: carol\ncn: Carol NoGroups\nsn: NoGroups\n",
        "carolpw",
    );
    out += &person(
        &format!("uid=dave (contractor),{PEOPLE}"),
        "uid: dave (contractor)\ncn: Dave\nsn: Contractor\n",
        "davepw",
    );
    out += &person(
        &format!(r"cn=Doe\, John,{PEOPLE}"),
        "uid: jdoe\ncn: Doe, John\nsn: Doe\n",
        "jdoepw",
    );
    out
}

fn groups() -> String {
    let member = |uid: &str| format!("member: uid={uid},{PEOPLE}\n");
    format!(
        "dn: cn=dev,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: dev\n{}{}member: cn=Doe\\, John,{PEOPLE}\n\n\
         dn: cn=ops,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: ops\n{}\n\
         dn: cn=empty,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: empty\nmember: {SERVICE_DN}\n\n\
         dn: cn=dev,ou=posixgroups,{SUFFIX}\nobjectClass: posixGroup\ncn: dev\ngidNumber: 20001\nmemberUid: alice\nmemberUid: bob\n\n\
         dn: cn=ops,ou=posixgroups,{SUFFIX}\nobjectClass: posixGroup\ncn: ops\ngidNumber: 20002\nmemberUid: alice\n",
        member("alice"),
        member("bob"),
        member("alice"),
    )
}

impl Slapd {
    /// Starts a fresh, populated slapd on two free ports. Panics (with the install command)
    /// when slapd or ldap-utils are missing.
    #[must_use]
    pub fn start() -> Self {
        let slapd = require_binary("slapd", INSTALL);
        let slapadd = require_binary("slapadd", INSTALL);
        let ldapadd = require_binary("ldapadd", INSTALL);
        let dir = workdir();
        make_tls(&dir.path().join("tls"));
        std::fs::create_dir_all(dir.path().join("db")).expect("create db dir");
        std::fs::write(dir.path().join("slapd.conf"), config(dir.path()))
            .expect("write slapd.conf");
        std::fs::write(dir.path().join("base.ldif"), people()).expect("write base.ldif");
        std::fs::write(dir.path().join("groups.ldif"), groups()).expect("write groups.ldif");
        // offline bulk load of the people (overlays do not run under slapadd)
        let out = run(
            Command::new(slapadd)
                .arg("-q")
                .arg("-f")
                .arg(dir.path().join("slapd.conf"))
                .arg("-l")
                .arg(dir.path().join("base.ldif")),
            Duration::from_secs(30),
        );
        assert!(out.success, "slapadd failed: {}{}", out.stdout, out.stderr);
        let mut me = Self {
            ldap_port: 0,
            ldaps_port: 0,
            dir,
            slapd,
            process: None,
        };
        for _attempt in 0..3 {
            me.ldap_port = free_port();
            me.ldaps_port = free_port();
            if me.ldaps_port == me.ldap_port {
                continue;
            }
            if me.try_start() {
                // groups through the running server, so memberOf is maintained
                let out = run(
                    Command::new(&ldapadd)
                        .args([
                            "-x",
                            "-H",
                            &me.ldap_url(),
                            "-D",
                            ADMIN_DN,
                            "-w",
                            ADMIN_PW,
                            "-f",
                        ])
                        .arg(me.dir.path().join("groups.ldif")),
                    Duration::from_secs(30),
                );
                assert!(
                    out.success,
                    "ldapadd groups failed: {}{}",
                    out.stdout, out.stderr
                );
                return me;
            }
        }
        panic!("slapd: no free port pair after 3 attempts");
    }

    fn try_start(&mut self) -> bool {
        let urls = format!("{} {}", self.ldap_url(), self.ldaps_url());
        let mut cmd = Command::new(&self.slapd);
        cmd.args(["-d", "0", "-h", &urls, "-f"])
            .arg(self.dir.path().join("slapd.conf"));
        let process = Process::spawn("slapd", cmd);
        let ok = wait_for_port(self.ldap_port, Duration::from_secs(10))
            && wait_for_port(self.ldaps_port, Duration::from_secs(10));
        if ok {
            self.process = Some(process);
        }
        ok
    }

    /// `ldap://127.0.0.1:<ldap_port>`.
    #[must_use]
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:<ldaps_port>`.
    #[must_use]
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// The CA that signed the server certificate (PEM).
    #[must_use]
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("tls/ca.crt")
    }

    /// An unrelated CA (PEM), for "wrong CA" tests.
    #[must_use]
    pub fn wrong_ca_cert(&self) -> PathBuf {
        self.dir.path().join("tls/wrong-ca.crt")
    }

    /// The working directory (config, data, certificates).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The slapd process id while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Process::pid)
    }

    /// Stops slapd (SIGTERM, then kill); the data and ports are kept for [`start_again`](Self::start_again).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            // if SIGTERM was not enough, dropping `p` kills and reaps it
            let _ = p.terminate(Duration::from_secs(5));
        }
    }

    /// Starts slapd again on the same ports with the same data.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "slapd is already running");
        assert!(
            self.try_start(),
            "slapd did not come back on ports {} / {}",
            self.ldap_port,
            self.ldaps_port
        );
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) slapd: connections are accepted by the kernel
    /// but never answered, the way a hung server behaves.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.pid().expect("slapd is not running");
        let sig = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {pid} failed");
        // the signal is delivered at once, but each thread stops (or resumes) when next
        // scheduled: wait until the kernel reports every thread in the wanted state
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if all_threads_stopped(pid) == frozen {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!(
            "slapd ({pid}) did not {} in time",
            if frozen { "stop" } else { "resume" }
        );
    }

    /// Established TCP connections to slapd's two ports, counted by `ss` on the server side.
    #[must_use]
    pub fn established_connections(&self) -> usize {
        let ss = require_binary("ss", "apt-get install iproute2");
        let filter = format!(
            "( sport = :{} or sport = :{} )",
            self.ldap_port, self.ldaps_port
        );
        let out = run(
            Command::new(ss).args(["-Htn", "state", "established", &filter]),
            Duration::from_secs(10),
        );
        assert!(out.success, "ss failed: {}", out.stderr);
        out.stdout.lines().filter(|l| !l.trim().is_empty()).count()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // a frozen process ignores SIGTERM until thawed; SIGKILL (Process's drop) does not care
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(pid.to_string())
                .status();
        }
    }
}
