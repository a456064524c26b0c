//! The OCI runtime spec of bot containers.

use serde_json::{Value, json};

use crate::bot::BotSpec;

/// `Any` type URL of a runtime spec.
pub(crate) const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// The minimal `PATH`.
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities containerd gives by default (`oci.WithDefaultUnixCaps`, as `ctr run`).
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The default init: a shell that sleeps until SIGTERM, then exits 0 (a bare
/// `sleep` as PID 1 would ignore SIGTERM). Needs `/bin/sh` and `sleep`.
pub(crate) fn default_init_args() -> Vec<String> {
    [
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done",
    ]
    .map(String::from)
    .to_vec()
}

pub(crate) struct SpecOptions<'a> {
    pub(crate) container_id: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) bot_spec: &'a BotSpec,
    /// `root.path`: the rootfs directory, or `rootfs` (in the bundle) for
    /// containers on a snapshot.
    pub(crate) root_path: &'a str,
    /// Environment before `bot_spec.env`: an image's `Env`; empty: the minimal one.
    pub(crate) base_env: &'a [String],
}

/// Builds the spec as JSON bytes.
pub(crate) fn runtime_spec(o: &SpecOptions<'_>) -> Result<Vec<u8>, String> {
    let s = o.bot_spec;
    if s.args.is_empty() {
        return Err("the init process needs at least one argument".into());
    }
    let rootfs = o.root_path;
    let mut env: Vec<String> = if o.base_env.is_empty() {
        vec![PATH.to_owned(), "HOME=/root".to_owned()]
    } else {
        o.base_env.to_vec()
    };
    for e in &s.env {
        let Some((key, _)) = e.split_once('=') else {
            return Err(format!("env entry {e:?} is not KEY=VALUE"));
        };
        env.retain(|old| old.split_once('=').map_or(old.as_str(), |(k, _)| k) != key);
        env.push(e.clone());
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]}),
    ];
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if s.network_namespace {
        namespaces.push(json!({"type": "network"}));
        // sysfs can only be mounted fresh inside a network namespace of one's own.
        mounts.push(
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                           "options": ["nosuid", "noexec", "nodev", "ro"]}),
        );
    }
    if let Some(data) = &s.data_dir {
        let data = data
            .to_str()
            .ok_or_else(|| format!("data_dir path {} is not UTF-8", data.display()))?;
        mounts.push(
            json!({"destination": "/data", "type": "bind", "source": data,
                           "options": ["rbind", "rw", "nosuid", "nodev"]}),
        );
    }
    let caps = json!(DEFAULT_CAPS);
    let allow_dev = |major: i64, minor: i64| json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"});
    let hostname: String = o.container_id.chars().take(63).collect();
    let spec: Value = json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": s.args,
            "env": env,
            "cwd": s.cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": rootfs, "readonly": s.readonly_rootfs},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": format!("/{}/{}", o.namespace, o.container_id),
            "namespaces": namespaces,
            "resources": {
                "devices": [
                    {"allow": false, "access": "rwm"},
                    allow_dev(1, 3), allow_dev(1, 5), allow_dev(1, 7),
                    allow_dev(1, 8), allow_dev(1, 9), allow_dev(5, 0)
                ]
            },
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    serde_json::to_vec(&spec).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_has_namespaces_mounts_and_caps() {
        let bot_spec = BotSpec::new("/srv/rootfs").with_data_dir("/srv/data/bot1");
        let bytes = runtime_spec(&SpecOptions {
            container_id: "mcp-bot1",
            namespace: "default",
            bot_spec: &bot_spec,
            root_path: "/srv/rootfs",
            base_env: &[],
        })
        .unwrap_or_default();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["type"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount"]);
        assert_eq!(v["linux"]["cgroupsPath"], "/default/mcp-bot1");
        assert_eq!(v["root"]["path"], "/srv/rootfs");
        assert_eq!(v["process"]["terminal"], false);
        assert_eq!(
            v["process"]["capabilities"]["bounding"]
                .as_array()
                .map(Vec::len),
            Some(14)
        );
        let data = v["mounts"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["destination"] == "/data"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(data["source"], "/srv/data/bot1");
        assert_eq!(data["type"], "bind");
    }

    #[test]
    fn bad_env_is_refused() {
        let mut bot_spec = BotSpec::new("/srv/rootfs");
        bot_spec.env.push("NOEQUALS".into());
        let r = runtime_spec(&SpecOptions {
            container_id: "c",
            namespace: "n",
            bot_spec: &bot_spec,
            root_path: "/srv/rootfs",
            base_env: &[],
        });
        assert!(r.is_err());
    }
}
