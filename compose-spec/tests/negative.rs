//! Validation and semantic errors: each case asserts the exact message, position and key path,
//! and that the error is an `Invalid` one (exit code 15).

use compose_spec::load_project;
use compose_spec::loader::LoadOptions;

/// Loads `yaml` as `compose.yaml` in a fresh directory and returns the error text.
fn error_of(yaml: &str) -> String {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tmp.path().join("compose.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"));
    let opts = LoadOptions {
        working_dir: tmp.path().to_path_buf(),
        project_name: Some("neg".into()),
        ..Default::default()
    };
    match load_project(&opts) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 15, "{e}");
            let text = e.to_string();
            // The file is named by its full path; keep the name for stable expectations.
            match text.find("compose.yaml:") {
                Some(i) => text[i..].to_string(),
                None => text,
            }
        }
    }
}

const CASES: &[(&str, &str, &str)] = &[
    (
        "unknown service key with did-you-mean",
        "services:\n  web:\n    imgae: nginx\n",
        "compose.yaml:3:5: services.web.imgae: unknown key \"imgae\" (did you mean \"image\"?)",
    ),
    (
        "unknown top-level key",
        "services:\n  web:\n    image: nginx\nnetwork:\n  a: {}\n",
        "compose.yaml:4:1: network: unknown key \"network\" (did you mean \"networks\"?)",
    ),
    (
        "unknown key without suggestion",
        "services:\n  web:\n    image: nginx\n    frobnicate: true\n",
        "compose.yaml:4:5: services.web.frobnicate: unknown key \"frobnicate\"",
    ),
    (
        "unknown nested key",
        "services:\n  web:\n    image: nginx\n    healthcheck:\n      intervall: 5s\n",
        "compose.yaml:5:7: services.web.healthcheck.intervall: unknown key \"intervall\" (did you mean \"interval\"?)",
    ),
    (
        "image must be a string",
        "services:\n  web:\n    image: [nginx]\n",
        "compose.yaml:3:12: services.web.image: must be a string, not a sequence",
    ),
    (
        "services must be a mapping",
        "services:\n  - web\n",
        "compose.yaml:2:3: services: must be a mapping, not a sequence",
    ),
    (
        "boolean expected",
        "services:\n  web:\n    image: nginx\n    privileged: maybe\n",
        "compose.yaml:4:17: services.web.privileged: \"maybe\" is not a boolean",
    ),
    (
        "integer expected",
        "services:\n  web:\n    image: nginx\n    deploy:\n      replicas: two\n",
        "compose.yaml:5:17: services.web.deploy.replicas: \"two\" is not an integer",
    ),
    (
        "invalid port mapping",
        "services:\n  web:\n    image: nginx\n    ports:\n      - 8080:80\n      - \"80:80:80:80\"\n",
        "compose.yaml:6:9: services.web.ports[1]: \"80:80:80:80\" is not a valid port mapping",
    ),
    (
        "port out of range",
        "services:\n  web:\n    image: nginx\n    ports:\n      - \"70000:80\"\n",
        "compose.yaml:5:9: services.web.ports[0]: \"70000:80\" is not a valid port mapping",
    ),
    (
        "bad protocol",
        "services:\n  web:\n    image: nginx\n    ports:\n      - \"80:80/xtp\"\n",
        "compose.yaml:5:9: services.web.ports[0]: \"80:80/xtp\" is not a valid port mapping",
    ),
    (
        "long port without target",
        "services:\n  web:\n    image: nginx\n    ports:\n      - published: 80\n",
        "compose.yaml:5:9: services.web.ports[0]: \"target\" is required",
    ),
    (
        "invalid duration",
        "services:\n  web:\n    image: nginx\n    healthcheck:\n      interval: 10 seconds\n",
        "compose.yaml:5:17: services.web.healthcheck.interval: \"10 seconds\" is not a valid duration",
    ),
    (
        "invalid stop_grace_period",
        "services:\n  web:\n    image: nginx\n    stop_grace_period: 1x\n",
        "compose.yaml:4:24: services.web.stop_grace_period: \"1x\" is not a valid duration",
    ),
    (
        "invalid byte size",
        "services:\n  web:\n    image: nginx\n    mem_limit: 1zb\n",
        "compose.yaml:4:16: services.web.mem_limit: \"1zb\" is not a valid byte size",
    ),
    (
        "invalid shm_size",
        "services:\n  web:\n    image: nginx\n    shm_size: lots\n",
        "compose.yaml:4:15: services.web.shm_size: \"lots\" is not a valid byte size",
    ),
    (
        "invalid volume spec",
        "services:\n  web:\n    image: nginx\n    volumes:\n      - \"a:b:c:d\"\n",
        "compose.yaml:5:9: services.web.volumes[0]: \"a:b:c:d\" is not a valid volume specification",
    ),
    (
        "invalid mount type",
        "services:\n  web:\n    image: nginx\n    volumes:\n      - type: disk\n        target: /x\n",
        "compose.yaml:5:15: services.web.volumes[0].type: \"disk\" is not a valid mount type (bind, volume, tmpfs, cluster, npipe or image)",
    ),
    (
        "limit docker refuses: mem_limit",
        "services:\n  web:\n    image: x\n    mem_limit: 1\n",
        "compose.yaml:4:5: services.web.mem_limit: Minimum memory limit allowed is 6MB",
    ),
    (
        "limit docker refuses: memory",
        "services:\n  web:\n    image: x\n    deploy:\n      resources:\n        limits:\n          memory: 5m\n",
        "compose.yaml:7:11: services.web.deploy.resources.limits.memory: Minimum memory limit allowed is 6MB",
    ),
    (
        "limit docker refuses: mem_reservation",
        "services:\n  web:\n    image: x\n    mem_reservation: 1k\n",
        "compose.yaml:4:5: services.web.mem_reservation: Minimum memory reservation allowed is 6MB",
    ),
    (
        "limit docker refuses: mem_limit",
        "services:\n  web:\n    image: x\n    mem_limit: 64m\n    mem_reservation: 128m\n",
        "compose.yaml:4:5: services.web.mem_limit: Minimum memory limit can not be less than memory reservation limit, see usage",
    ),
    (
        "limit docker refuses: memswap_limit",
        "services:\n  web:\n    image: x\n    memswap_limit: 1g\n",
        "compose.yaml:4:5: services.web.memswap_limit: You should always set the Memory limit when using Memoryswap limit, see usage",
    ),
    (
        "limit docker refuses: memswap_limit",
        "services:\n  web:\n    image: x\n    mem_limit: 64m\n    memswap_limit: 32m\n",
        "compose.yaml:5:5: services.web.memswap_limit: Minimum memoryswap limit should be larger than memory limit, see usage",
    ),
    (
        "limit docker refuses: mem_swappiness",
        "services:\n  web:\n    image: x\n    mem_swappiness: 101\n",
        "compose.yaml:4:5: services.web.mem_swappiness: Invalid value: 101, valid memory swappiness range is 0-100",
    ),
    (
        "limit docker refuses: cpus",
        "services:\n  web:\n    image: x\n    cpus: -1\n",
        "compose.yaml:4:5: services.web.cpus: -1 is out of range: CPUs range from 0.01 to the number of CPUs (0: no limit)",
    ),
    (
        "limit docker refuses: cpus",
        "services:\n  web:\n    image: x\n    deploy: {resources: {limits: {cpus: '0.001'}}}\n",
        "compose.yaml:4:35: services.web.deploy.resources.limits.cpus: 0.001 is out of range: CPUs range from 0.01 to the number of CPUs (0: no limit)",
    ),
    (
        "limit docker refuses: cpu_quota",
        "services:\n  web:\n    image: x\n    cpus: 1\n    cpu_quota: 50000\n",
        "compose.yaml:5:5: services.web.cpu_quota: Conflicting options: Nano CPUs and CPU Quota cannot both be set",
    ),
    (
        "limit docker refuses: cpu_period",
        "services:\n  web:\n    image: x\n    cpu_period: 10\n",
        "compose.yaml:4:5: services.web.cpu_period: CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
    ),
    (
        "limit docker refuses: cpu_quota",
        "services:\n  web:\n    image: x\n    cpu_quota: 999\n",
        "compose.yaml:4:5: services.web.cpu_quota: CPU cfs quota can not be less than 1ms (i.e. 1000)",
    ),
    (
        "limit docker refuses: weight",
        "services:\n  web:\n    image: x\n    blkio_config: {weight: 5}\n",
        "compose.yaml:4:20: services.web.blkio_config.weight: Range of blkio weight is from 10 to 1000",
    ),
    (
        "limit docker refuses: oom_score_adj",
        "services:\n  web:\n    image: x\n    oom_score_adj: -1001\n",
        "compose.yaml:4:5: services.web.oom_score_adj: Invalid value -1001, range for oom score adj is [-1000, 1000]",
    ),
    (
        "limit docker refuses: shm_size",
        "services:\n  web:\n    image: x\n    shm_size: -1\n",
        "compose.yaml:4:5: services.web.shm_size: SHM size can not be less than 0",
    ),
    (
        "depends_on unknown service",
        "services:\n  web:\n    image: nginx\n    depends_on:\n      - db\n",
        "compose.yaml:5:9: services.web.depends_on.db: service \"db\" is not defined",
    ),
    (
        "invalid depends_on condition",
        "services:\n  web:\n    image: nginx\n    depends_on:\n      db:\n        condition: service_ready\n  db:\n    image: postgres\n",
        "compose.yaml:6:20: services.web.depends_on.db.condition: \"service_ready\" is not a valid condition (service_started, service_healthy or service_completed_successfully)",
    ),
    (
        "dependency cycle",
        "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
        "compose.yaml:4:18: services.a.depends_on.b: dependency cycle detected: a -> b -> a",
    ),
    (
        "self dependency",
        "services:\n  a:\n    image: x\n    depends_on: [a]\n",
        "compose.yaml:4:18: services.a.depends_on.a: service \"a\" depends on itself",
    ),
    (
        "links to unknown service",
        "services:\n  web:\n    image: nginx\n    links:\n      - db:database\n",
        "compose.yaml:5:9: services.web.links[0]: links to undefined service \"db\"",
    ),
    (
        "network_mode service unknown",
        "services:\n  web:\n    image: nginx\n    network_mode: service:vpn\n",
        "compose.yaml:4:5: services.web.network_mode: refers to undefined service \"vpn\"",
    ),
    (
        "volumes_from unknown service",
        "services:\n  web:\n    image: nginx\n    volumes_from:\n      - data:ro\n",
        "compose.yaml:5:9: services.web.volumes_from[0]: refers to undefined service \"data\"",
    ),
    (
        "undefined network",
        "services:\n  web:\n    image: nginx\n    networks:\n      - front\n",
        "compose.yaml:5:9: services.web.networks.front: network \"front\" is not defined in the top-level networks",
    ),
    (
        "undefined volume",
        "services:\n  web:\n    image: nginx\n    volumes:\n      - data:/data\n",
        "compose.yaml:5:9: services.web.volumes[0]: volume \"data\" is not defined in the top-level volumes",
    ),
    (
        "undefined secret",
        "services:\n  web:\n    image: nginx\n    secrets:\n      - token\n",
        "compose.yaml:5:9: services.web.secrets[0]: secret \"token\" is not defined in the top-level secrets",
    ),
    (
        "undefined config",
        "services:\n  web:\n    image: nginx\n    configs:\n      - source: conf\n",
        "compose.yaml:5:9: services.web.configs[0]: config \"conf\" is not defined in the top-level configs",
    ),
    (
        "container_name with replicas",
        "services:\n  web:\n    image: nginx\n    container_name: web\n    deploy:\n      replicas: 2\n",
        "compose.yaml:4:5: services.web.container_name: cannot be set when the service has 2 replicas, as container names must be unique",
    ),
    (
        "neither image nor build",
        "services:\n  web:\n    command: echo hi\n",
        "compose.yaml:2:3: services.web: has neither an image nor a build context specified",
    ),
    (
        "invalid restart policy",
        "services:\n  web:\n    image: nginx\n    restart: sometimes\n",
        "compose.yaml:4:14: services.web.restart: \"sometimes\" is not a valid restart policy",
    ),
    (
        "unterminated quote in command",
        "services:\n  web:\n    image: nginx\n    command: echo 'hi\n",
        "compose.yaml:4:14: services.web.command: cannot split \"echo 'hi\": unterminated single quote",
    ),
    (
        "healthcheck test must start with CMD",
        "services:\n  web:\n    image: nginx\n    healthcheck:\n      test: [curl, localhost]\n",
        "compose.yaml:5:13: services.web.healthcheck.test: must start with NONE, CMD or CMD-SHELL, not \"curl\"",
    ),
    (
        "secret without source",
        "services:\n  web:\n    image: nginx\nsecrets:\n  token: {}\n",
        "compose.yaml:5:10: secrets.token: secret needs one of \"file\", \"environment\" or \"external\"",
    ),
    (
        "environment must be list or mapping",
        "services:\n  web:\n    image: nginx\n    environment: FOO=bar\n",
        "compose.yaml:4:18: services.web.environment: expected a mapping or a list of \"KEY=VALUE\", found a string",
    ),
    (
        "ulimit soft above hard",
        "services:\n  web:\n    image: nginx\n    ulimits:\n      nofile:\n        soft: 20\n        hard: 10\n",
        "compose.yaml:6:9: services.web.ulimits.nofile: soft limit 20 is greater than hard limit 10",
    ),
    (
        "invalid service name",
        "services:\n  \"my web\":\n    image: nginx\n",
        "compose.yaml:2:3: services.my web: \"my web\" is not a valid service name (letters, digits, \".\", \"_\" and \"-\" only)",
    ),
    (
        "invalid long port protocol",
        "services:\n  web:\n    image: nginx\n    ports:\n      - target: 80\n        protocol: http\n",
        "compose.yaml:6:19: services.web.ports[0].protocol: \"http\" is not a valid protocol (tcp, udp or sctp)",
    ),
    (
        "invalid deploy mode",
        "services:\n  web:\n    image: nginx\n    deploy:\n      mode: everywhere\n",
        "compose.yaml:5:13: services.web.deploy.mode: \"everywhere\" is not a valid deploy mode (replicated, global, replicated-job or global-job)",
    ),
    (
        "scale differs from replicas",
        "services:\n  web:\n    image: nginx\n    scale: 2\n    deploy:\n      replicas: 3\n",
        "compose.yaml:4:5: services.web.scale: 2 differs from deploy.replicas 3",
    ),
    (
        "port target out of range",
        "services:\n  web:\n    image: nginx\n    ports:\n      - target: 0\n",
        "compose.yaml:5:17: services.web.ports[0].target: 0 is not a valid port",
    ),
    (
        "dependency disabled by profiles",
        "services:\n  web:\n    image: nginx\n    depends_on: [db]\n  db:\n    image: postgres\n    profiles: [debug]\n",
        "compose.yaml:4:18: services.web.depends_on.db: service \"db\" is required but disabled by its profiles; enable one of them with --profile",
    ),
    // compose's rules beyond the JSON schema (compose-go validate/transform).
    (
        "external volume with driver",
        "services: {a: {image: x}}\nvolumes: {v: {external: true, driver: local}}\n",
        "compose.yaml:2:31: volumes.v.driver: conflicting parameters \"external\" and \"driver\" specified",
    ),
    (
        "external volume with driver_opts",
        "services: {a: {image: x}}\nvolumes: {v: {external: true, driver_opts: {o: bind}}}\n",
        "compose.yaml:2:31: volumes.v.driver_opts: conflicting parameters \"external\" and \"driver_opts\" specified",
    ),
    (
        "external network with labels",
        "services: {a: {image: x}}\nnetworks: {n: {external: true, labels: {a: b}}}\n",
        "compose.yaml:2:32: networks.n.labels: conflicting parameters \"external\" and \"labels\" specified",
    ),
    (
        "external secret with driver",
        "services: {a: {image: x}}\nsecrets: {s: {external: true, driver: x}}\n",
        "compose.yaml:2:31: secrets.s.driver: conflicting parameters \"external\" and \"driver\" specified",
    ),
    (
        "external config with labels",
        "services: {a: {image: x}}\nconfigs: {c: {external: true, labels: [a=b]}}\n",
        "compose.yaml:2:31: configs.c.labels: conflicting parameters \"external\" and \"labels\" specified",
    ),
    (
        "name contradicts external.name",
        "services: {a: {image: x}}\nvolumes: {v: {name: foo, external: {name: bar}}}\n",
        "compose.yaml:2:15: volumes.v: name and external.name conflict; only use name",
    ),
    (
        "network_mode with networks",
        "services: {a: {image: x, network_mode: bridge, networks: [default]}}\n",
        "compose.yaml:1:26: services.a.network_mode: \"network_mode\" and \"networks\" are mutually exclusive",
    ),
    (
        "bind without source",
        "services: {a: {image: x, volumes: [{type: bind, target: /x}]}}\n",
        "compose.yaml:1:36: services.a.volumes[0].source: invalid mount config for type \"bind\": field Source must not be empty",
    ),
    (
        "bind with empty source",
        "services: {a: {image: x, volumes: [{type: bind, source: \"\", target: /x}]}}\n",
        "compose.yaml:1:57: services.a.volumes[0].source: invalid mount config for type \"bind\": field Source must not be empty",
    ),
    (
        "negative tmpfs size",
        "services: {a: {image: x, volumes: [{type: tmpfs, target: /x, tmpfs: {size: -1}}]}}\n",
        "compose.yaml:1:76: services.a.volumes[0].tmpfs.size: must be greater than or equal to 0",
    ),
    (
        "device request with count and device_ids",
        "services: {a: {image: x, deploy: {resources: {reservations: {devices: [{count: 1, device_ids: [\"0\"], capabilities: [gpu]}]}}}}}\n",
        "compose.yaml:1:95: services.a.deploy.resources.reservations.devices[0].device_ids: \"count\" and \"device_ids\" attributes are exclusive",
    ),
    (
        "device request without capabilities",
        "services: {a: {image: x, deploy: {resources: {reservations: {devices: [{count: 1}]}}}}}\n",
        "compose.yaml:1:72: services.a.deploy.resources.reservations.devices[0]: \"capabilities\" is required",
    ),
    (
        "build.ssh of the wrong type",
        "services: {a: {build: {context: ., ssh: 3}}}\n",
        "compose.yaml:1:41: services.a.build.ssh: must be a mapping or a list of id=path, not a integer",
    ),
    (
        "build.ssh entry without =",
        "services: {a: {build: {context: ., ssh: [foo]}}}\n",
        "compose.yaml:1:42: services.a.build.ssh[0]: invalid ssh key \"foo\": expected id=path or default",
    ),
    (
        "top-level name not a string",
        "name: 123\nservices: {a: {image: x}}\n",
        "compose.yaml:1:7: name: must be a string, not a integer",
    ),
    (
        "dockerfile and dockerfile_inline",
        "services: {a: {build: {context: ., dockerfile: D, dockerfile_inline: \"FROM x\"}}}\n",
        "compose.yaml:1:70: services.a.build.dockerfile_inline: \"dockerfile\" and \"dockerfile_inline\" are mutually exclusive",
    ),
    (
        "negative scale",
        "services: {a: {image: x, scale: -1}}\n",
        "compose.yaml:1:33: services.a.scale: must be greater than or equal to 0",
    ),
    (
        "tmpfs and volume on one target",
        "services: {a: {image: x, tmpfs: [/x], volumes: [{type: tmpfs, target: /x}]}}\n",
        "compose.yaml:1:49: services.a.volumes[0]: target /x already mounted as services.a.tmpfs[0]",
    ),
    (
        "secret with file and environment",
        "services: {a: {image: x}}\nsecrets: {s: {file: a, environment: B}}\n",
        "compose.yaml:2:14: secrets.s: file|environment attributes are mutually exclusive",
    ),
    (
        "config with file and content",
        "services: {a: {image: x}}\nconfigs: {c: {file: a, content: b}}\n",
        "compose.yaml:2:14: configs.c: file|environment|content attributes are mutually exclusive",
    ),
    (
        "watch sync without target",
        "services: {a: {image: x, develop: {watch: [{path: ., action: sync}]}}}\n",
        "compose.yaml:1:44: services.a.develop.watch[0].target: is required for the \"sync\" action",
    ),
    (
        "watch with a blank path",
        "services: {a: {image: x, develop: {watch: [{path: \"\", action: rebuild}]}}}\n",
        "compose.yaml:1:51: services.a.develop.watch[0].path: value can't be blank",
    ),
    (
        "cpus differs from deploy limits",
        "services: {a: {image: x, cpus: 1, deploy: {resources: {limits: {cpus: \"2\"}}}}}\n",
        "compose.yaml:1:26: services.a.cpus: can't set distinct values on 'cpus' and 'deploy.resources.limits.cpus'",
    ),
    (
        "mem_limit differs from deploy limits",
        "services: {a: {image: x, mem_limit: 1g, deploy: {resources: {limits: {memory: 2g}}}}}\n",
        "compose.yaml:1:26: services.a.mem_limit: can't set distinct values on 'mem_limit' and 'deploy.resources.limits.memory'",
    ),
    (
        "pids_limit differs from deploy limits",
        "services: {a: {image: x, pids_limit: 10, deploy: {resources: {limits: {pids: 20}}}}}\n",
        "compose.yaml:1:12: services.a.pids_limit: can't set distinct values on 'pids_limit' and 'deploy.resources.limits.pids'",
    ),
    (
        "additional context of an unknown service",
        "services: {a: {build: {context: ., additional_contexts: {b: \"service:zz\"}}}}\n",
        "compose.yaml:1:16: services.a.build.additional_contexts.b: refers to undefined service \"zz\"",
    ),
    (
        "additional context of a service without build",
        "services: {a: {build: {context: ., additional_contexts: {b: \"service:c\"}}}, c: {image: x}}\n",
        "compose.yaml:1:16: services.a.build.additional_contexts.b: refers to service \"c\", which has no build section",
    ),
    (
        "build.platforms without the service platform",
        "services: {a: {platform: linux/arm64, build: {context: ., platforms: [linux/amd64]}}}\n",
        "compose.yaml:1:39: services.a.build.platforms: must include the service's platform \"linux/arm64\"",
    ),
    (
        "port host_ip not an address",
        "services: {a: {image: x, ports: [{target: 80, host_ip: nope}]}}\n",
        "compose.yaml:1:56: services.a.ports[0].host_ip: invalid ip address: nope",
    ),
];

#[test]
fn negative_cases() {
    let mut failures = Vec::new();
    for (name, yaml, want) in CASES {
        let got = error_of(yaml);
        if got != *want {
            failures.push(format!("{name}:\n  want: {want}\n  got:  {got}"));
        }
    }
    println!("{} negative cases", CASES.len());
    assert!(CASES.len() >= 25);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The edges of what docker accepts load: 6 MB, swap -1 (unlimited), cpus 0 (no limit) and
/// 0.01, cpu_quota -1, oom_score_adj ±1000, swappiness 0 and 100, shm_size 0.
#[test]
fn limits_docker_accepts_load() {
    let yaml = "services:\n  a:\n    image: x\n    mem_limit: 6m\n    mem_reservation: 6m\n    memswap_limit: -1\n    cpus: 0\n    cpu_quota: -1\n    cpu_period: 1000\n    oom_score_adj: -1000\n    mem_swappiness: 0\n    shm_size: 0\n  b:\n    image: x\n    mem_limit: 1g\n    memswap_limit: 1g\n    cpus: 0.01\n    oom_score_adj: 1000\n    mem_swappiness: 100\n    blkio_config: {weight: 10}\n  c:\n    image: x\n    deploy: {resources: {limits: {memory: 6291456, cpus: '2'}, reservations: {memory: 6m}}}\n";
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tmp.path().join("compose.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"));
    let opts = LoadOptions {
        working_dir: tmp.path().to_path_buf(),
        project_name: Some("edges".into()),
        ..Default::default()
    };
    if let Err(e) = load_project(&opts) {
        panic!("refused: {e}");
    }
}
