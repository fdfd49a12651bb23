//! What ships beside the binary, checked against the configuration it carries: the production
//! example, the container image and the Kubernetes manifests. Images cannot be built and clusters
//! cannot run here, so each test checks what they would run: the files, ports, users and paths.

use crate::binary::mfagate;
use mfagate::Config;
use mfagate::config::Channel;
use serde_norway::Value;
use std::path::{Path, PathBuf};

/// The repository root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The file `deploy/build-deb.sh` writes: cargo-deb's `<name>_<version>-<revision>_<arch>.deb`.
pub(crate) fn deb_file_name() -> String {
    let out = std::process::Command::new("dpkg").arg("--print-architecture").output().unwrap();
    assert!(out.status.success());
    let arch = String::from_utf8(out.stdout).unwrap();
    format!("mfagate_{}-1_{}.deb", env!("CARGO_PKG_VERSION"), arch.trim())
}

/// `mfagate check-config FILE` through the binary: its standard output, or a failure with its errors.
fn check_config(file: &Path) -> String {
    let out = mfagate().arg("check-config").arg(file).output().unwrap();
    assert!(out.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_production_example_passes_check_config_with_tls_both_entra_issuers_and_a_portal() {
    let file = repo().join("examples/production.toml");
    assert!(check_config(&file).contains("ok (2 issuers, 2 routes)"));
    let c = Config::load(&file).unwrap();
    let (cert, key) = c.listen.tls.clone().expect("a TLS listener");
    for f in [&cert, &key] {
        assert!(std::fs::read_to_string(f).unwrap().starts_with("-----BEGIN "), "{}", f.display());
    }
    let issuers: Vec<&str> = c.issuers.iter().map(|i| i.issuer.as_str()).collect();
    assert_eq!(
        issuers,
        ["https://sts.windows.net/{tenantid}/", "https://login.microsoftonline.com/{tenantid}/v2.0"]
    );
    let api = c.routes.iter().find(|r| r.channel == Channel::Api).expect("an API route");
    assert_eq!(api.issuers, ["entra-v1", "entra-v2"]);
    let portal = c.routes.iter().find(|r| r.channel == Channel::Portal).expect("a portal route");
    let login = c.issuer(portal.login.as_deref().unwrap()).expect("OIDC sign-in");
    assert!(login.client.is_some());
    assert!(c.session.secure && !c.session.keys.is_empty());
    assert!(c.oidc_callback.unwrap().to_string().starts_with("https://"));
}

/// One Dockerfile instruction: its keyword and the rest, continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                let joined = std::mem::take(&mut current);
                if let Some((word, rest)) = joined.trim().split_once(char::is_whitespace) {
                    out.push((
                        word.to_ascii_uppercase(),
                        rest.split_whitespace().collect::<Vec<_>>().join(" "),
                    ));
                }
            }
        }
    }
    out
}

fn instructions<'a>(all: &'a [(String, String)], word: &str) -> Vec<&'a str> {
    all.iter().filter(|(w, _)| w == word).map(|(_, rest)| rest.as_str()).collect()
}

/// The version in `cargo install cargo-deb --version X --locked` in this text.
fn cargo_deb_version(text: &str) -> Option<String> {
    let rest = text.split("cargo install cargo-deb --version ").nth(1)?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// `/etc/os-release`'s `VERSION_CODENAME`: the Debian release the package is built and tested on.
fn codename() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("VERSION_CODENAME=")).unwrap();
    line.trim_matches('"').to_owned()
}

/// The uid in `USER uid[:gid]`.
fn image_uid(all: &[(String, String)]) -> u32 {
    let users = instructions(all, "USER");
    assert_eq!(users.len(), 1, "{users:?}");
    users[0].split(':').next().unwrap().parse().expect("a numeric USER, so runAsNonRoot can check it")
}

#[test]
fn the_dockerfile_installs_the_package_the_build_script_makes_as_a_non_root_user() {
    let all = dockerfile();
    let from = instructions(&all, "FROM");
    let os = codename();
    assert_eq!(from.len(), 2, "{from:?}");
    // The build stage's Rust is the pinned toolchain; both stages are this machine's Debian release,
    // whose libraries dpkg-shlibdeps named in the package's dependencies.
    let toolchain = std::fs::read_to_string(repo().join("rust-toolchain.toml")).unwrap();
    let (image, stage) = from[0].split_once(" AS ").unwrap();
    let rust = image.strip_prefix("rust:").unwrap().strip_suffix(&format!("-{os}")).unwrap();
    assert!(toolchain.contains(&format!("channel = \"{rust}")), "{image} against {toolchain}");
    assert_eq!(from[1], format!("debian:{os}-slim"));

    // The build stage runs the build script and takes the file it writes, with the cargo-deb CI uses.
    let runs = instructions(&all, "RUN");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let pinned = cargo_deb_version(&ci).expect(".ci/run installs a pinned cargo-deb");
    assert!(runs.iter().any(|r| cargo_deb_version(r).as_ref() == Some(&pinned)), "cargo-deb {pinned}");
    let build = runs.iter().find(|r| r.contains("deploy/build-deb.sh")).expect("runs deploy/build-deb.sh");
    let glob = build.split("cp ").nth(1).unwrap().split_whitespace().next().unwrap();
    let (prefix, suffix) = glob.strip_prefix("target/debian/").unwrap().split_once('*').unwrap();
    let name = deb_file_name();
    assert!(name.starts_with(prefix) && name.ends_with(suffix), "{glob} does not take {name}");
    let copied = build.split_whitespace().last().unwrap();
    assert!(
        instructions(&all, "COPY").contains(&format!("--from={stage} {copied} /tmp/mfagate.deb").as_str())
    );
    assert!(runs.iter().any(|r| r.contains("apt-get install") && r.contains(" /tmp/mfagate.deb ")));

    // A fixed non-root uid, the one the useradd gives the package's user, and Kubernetes runs as.
    let uid = image_uid(&all);
    assert_ne!(uid, 0);
    assert!(
        runs.iter().any(|r| r.contains(&format!("useradd --system --uid {uid} ")) && r.contains(" mfagate "))
    );

    // The config it runs is the one it copies, which check-config passes, and whose ports it
    // exposes and health-checks.
    let cmd = instructions(&all, "CMD");
    assert_eq!(cmd, [r#"["run", "--config", "/etc/mfagate/mfagate.toml"]"#]);
    assert!(instructions(&all, "COPY").contains(&"deploy/docker/mfagate.toml /etc/mfagate/mfagate.toml"));
    let file = repo().join("deploy/docker/mfagate.toml");
    check_config(&file);
    let c = Config::load(&file).unwrap();
    let admin = c.admin.expect("an admin listener for the health check");
    let health = instructions(&all, "HEALTHCHECK");
    assert_eq!(health.len(), 1);
    assert!(
        health[0].ends_with(&format!(r#"CMD ["curl", "-fsS", "http://127.0.0.1:{}/healthz"]"#, admin.port())),
        "{health:?} against admin port {}",
        admin.port()
    );
    let exposed: Vec<u16> = instructions(&all, "EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(exposed, [c.listen.addr.port(), admin.port()]);
    assert!(
        !c.listen.addr.ip().is_loopback() && !admin.ip().is_loopback(),
        "reachable from outside the container"
    );
    assert!(c.decision_log.path.starts_with("/var/log/mfagate"));
    assert_eq!(instructions(&all, "VOLUME"), ["/var/log/mfagate"]);
}

/// The manifests in deploy/kubernetes, by `Kind/name`.
fn manifests() -> std::collections::HashMap<String, Value> {
    let dir = repo().join("deploy/kubernetes");
    let kustomization: Value =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).unwrap();
    let listed: Vec<&str> =
        kustomization["resources"].as_sequence().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    files.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, files, "kustomization.yaml lists every manifest");
    listed
        .iter()
        .map(|f| {
            let doc: Value = serde_norway::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap();
            (format!("{}/{}", doc["kind"].as_str().unwrap(), doc["metadata"]["name"].as_str().unwrap()), doc)
        })
        .collect()
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what}: not a string: {v:?}"))
}

#[test]
fn the_kubernetes_manifests_parse_and_their_probes_and_ports_match_the_config_they_ship() {
    let m = manifests();
    let (deployment, service, config_map, secret) = (
        &m["Deployment/mfagate"],
        &m["Service/mfagate"],
        &m["ConfigMap/mfagate-config"],
        &m["Secret/mfagate-secrets"],
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    assert_eq!(str_of(&container["image"], "image"), format!("mfagate:{}", env!("CARGO_PKG_VERSION")));
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&labels[k], v, "the Service selects the Deployment's pods");
    }

    // Materialize the pod's volumes as the kubelet would, under a temporary root, and load the
    // config the container's arguments name from there.
    let root = tempfile::tempdir().unwrap();
    let at = |path: &str| root.path().join(path.trim_start_matches('/'));
    let volumes = pod["volumes"].as_sequence().unwrap();
    let mut mounts = std::collections::HashMap::new();
    for mount in container["volumeMounts"].as_sequence().unwrap() {
        let name = str_of(&mount["name"], "volumeMounts.name");
        let path = str_of(&mount["mountPath"], "mountPath").to_owned();
        let volume = volumes.iter().find(|v| v["name"].as_str() == Some(name)).unwrap();
        std::fs::create_dir_all(at(&path)).unwrap();
        mounts.insert(name.to_owned(), (path, volume.clone()));
    }
    let (config_dir, config_volume) = &mounts["config"];
    assert_eq!(config_volume["configMap"]["name"], config_map["metadata"]["name"]);
    let (secret_dir, secret_volume) = &mounts["secrets"];
    assert_eq!(secret_volume["secret"]["secretName"], secret["metadata"]["name"]);
    let keys: Vec<&str> =
        secret["stringData"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap()).collect();
    for key in &keys {
        // The shipped Secret holds placeholders: the development certificate stands in for them.
        let dev = std::fs::read(repo().join("examples/production").join(key)).unwrap();
        std::fs::write(at(secret_dir).join(key), dev).unwrap();
    }
    let args: Vec<&str> =
        container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let config_path = match args.as_slice() {
        ["run", "--config", path] => *path,
        other => panic!("args {other:?}"),
    };
    let config_file = Path::new(config_path).strip_prefix(config_dir).unwrap();
    let text = str_of(&config_map["data"][config_file.to_str().unwrap()], "the ConfigMap's config");
    let materialized = at(config_path);
    std::fs::write(
        &materialized,
        text.replace("/etc/mfagate/", &format!("{}/", at("/etc/mfagate").display())),
    )
    .unwrap();
    check_config(&materialized);
    let c = Config::load(&materialized).unwrap();

    // Every file the config names is a key of the mounted Secret; the log is on a writable volume
    // (the root file system is read-only).
    let (cert, key) = c.listen.tls.clone().expect("TLS in the pod");
    let private = c.private_admin.clone().expect("a private admin listener");
    let private_tls = private.tls.clone().expect("TLS on the private admin listener");
    // check-config read the token from the Secret's admin.token.
    assert!(private.token.is_some(), "a bearer token for the private admin listener");
    for f in [cert, key, private_tls.cert, private_tls.key] {
        let name = f.strip_prefix(at(secret_dir)).unwrap().to_str().unwrap().to_owned();
        assert!(keys.contains(&name.as_str()), "{name} is not in the Secret");
    }
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
    let log_dir = c.decision_log.path.parent().unwrap();
    let writable =
        mounts.values().find(|(path, _)| Path::new(path) == log_dir).expect("the log's folder is a volume");
    assert!(writable.1["emptyDir"].is_mapping());

    // The probes are on the admin listener's port, the Service on the gateway's.
    let ports = container["ports"].as_sequence().unwrap();
    let port = |name: &Value| -> u64 {
        let named = ports.iter().find(|p| &p["name"] == name).unwrap_or_else(|| panic!("no port {name:?}"));
        named["containerPort"].as_u64().unwrap()
    };
    let admin = c.admin.expect("an admin listener for the probes");
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(str_of(&get["path"], probe), path);
        assert_eq!(port(&get["port"]), u64::from(admin.port()), "{probe}");
        assert!(get["scheme"].is_null() || get["scheme"] == "HTTP", "the admin listener is plain HTTP");
    }
    assert!(private.addr.ip().is_loopback(), "the private admin plane is not on the pod network");
    assert!(ports.iter().all(|p| p["containerPort"].as_u64() != Some(u64::from(private.addr.port()))));
    let service_ports = service["spec"]["ports"].as_sequence().unwrap();
    assert_eq!(service_ports.len(), 1, "the Service exposes the gateway, not the admin port");
    assert_eq!(port(&service_ports[0]["targetPort"]), u64::from(c.listen.addr.port()));
    assert!(!c.listen.addr.ip().is_loopback() && !admin.ip().is_loopback(), "reachable from the kubelet");

    // Kubernetes waits longer than the drain: shutdown_delay_secs (5) plus shutdown_grace_secs.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > 5 + c.listen.shutdown_grace.as_secs(), "{grace}s");

    // It runs as the image's own non-root user.
    let security = &pod["securityContext"];
    assert_eq!(security["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(security["runAsUser"].as_u64(), Some(u64::from(image_uid(&dockerfile()))));

    // The replicas share one Redis: the config names its Service and the Secret key Redis takes
    // its password from; only the gateway's pods may reach it; nothing of it is persisted.
    let cluster = c.cluster.expect("[cluster] in the shipped config");
    let (redis, redis_service, policy) =
        (&m["Deployment/mfagate-redis"], &m["Service/mfagate-redis"], &m["NetworkPolicy/mfagate-redis"]);
    let redis_port = redis_service["spec"]["ports"][0]["port"].as_u64().unwrap();
    assert_eq!(
        cluster.url,
        format!("redis://{}:{redis_port}/0", str_of(&redis_service["metadata"]["name"], "name"))
    );
    let redis_pod = &redis["spec"]["template"]["spec"];
    for (k, v) in redis_service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&redis["spec"]["template"]["metadata"]["labels"][k], v);
    }
    let redis_container = &redis_pod["containers"][0];
    let args: Vec<&str> =
        redis_container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(
        args.windows(2).any(|w| w == ["--save", ""]) && args.windows(2).any(|w| w == ["--appendonly", "no"])
    );
    let from = &redis_container["env"][0]["valueFrom"]["secretKeyRef"];
    assert!(args.windows(2).any(|w| w == ["--requirepass", "$(REDIS_PASSWORD)"]));
    assert_eq!(redis_container["env"][0]["name"], "REDIS_PASSWORD");
    assert_eq!(from["name"], secret["metadata"]["name"]);
    let password_key = str_of(&from["key"], "secretKeyRef.key");
    assert!(cluster.password.is_some(), "check-config read the password");
    assert!(keys.contains(&password_key));
    assert_eq!(at(secret_dir).join(password_key), at("/etc/mfagate/secrets/redis.password"));
    assert_eq!(policy["spec"]["podSelector"]["matchLabels"], redis["spec"]["template"]["metadata"]["labels"]);
    assert_eq!(policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"], *labels);
    assert_eq!(redis_pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
}
