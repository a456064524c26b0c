//! Bot container lifecycle and lookup against a real containerd.
//! Run with `--features containerd-tests` (see scripts/containerd-env.sh).
#![cfg(feature = "containerd-tests")]

mod common;

use std::time::Duration;

use common::{TestEnv, raw_create_container};
use mcpod_containerd::{BOT_LABEL, BotConfig, Error, TaskStatus};

#[tokio::test]
async fn create_start_stop_delete_and_list() {
    let env = TestEnv::new("life").await;
    let bots = &env.bots;
    let bot = "life1";
    let created = bots.create(bot, &env.spec(bot)).await.expect("create");
    assert_eq!(created.container_id, "mcp-life1");
    assert!(env.data_root.join(bot).is_dir(), "data dir created");

    // A second create of the same bot is refused with its own variant.
    match bots.create(bot, &env.spec(bot)).await {
        Err(Error::AlreadyExists { container_id }) => assert_eq!(container_id, "mcp-life1"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }

    let listed = bots.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].bot_id.as_deref(), Some(bot));
    assert!(listed[0].task.is_none(), "no task before start");

    let task = bots.start(bot).await.expect("start");
    assert_eq!(task.status, TaskStatus::Running);
    assert!(task.pid > 0);
    let listed = bots.list().await.expect("list");
    assert_eq!(
        listed[0].task.as_ref().map(|t| t.status),
        Some(TaskStatus::Running)
    );
    // Starting a running bot is a no-op returning the same task.
    assert_eq!(bots.start(bot).await.expect("start again").pid, task.pid);

    // The data dir is mounted at /data: a file written there appears on the host.
    let mut p = env
        .client
        .exec(
            &created.container_id,
            &mcpod_containerd::ExecOptions::new(["/bin/sh", "-c", "echo hi > /data/x"]),
        )
        .await
        .expect("exec");
    assert!(p.wait().await.expect("wait").success());
    p.stdin.take();
    p.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    assert_eq!(
        std::fs::read_to_string(env.data_root.join(bot).join("x")).expect("data file"),
        "hi\n"
    );

    // The default init exits on SIGTERM, so stop does not need SIGKILL (exit 0).
    let t0 = std::time::Instant::now();
    let status = bots.stop(bot).await.expect("stop").expect("had a task");
    assert_eq!(status.code, 0, "init exits 0 on SIGTERM");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t0.elapsed()
    );
    assert!(env.client.task("mcp-life1").await.expect("task").is_none());
    assert!(bots.stop(bot).await.expect("stop again").is_none());

    // Restart after stop, then delete: no task and no record remain.
    bots.start(bot).await.expect("restart");
    bots.delete(bot).await.expect("delete");
    assert!(env.client.task("mcp-life1").await.expect("task").is_none());
    assert!(env.client.list_tasks().await.expect("tasks").is_empty());
    assert!(matches!(bots.find(bot).await, Err(Error::NotFound { .. })));
    assert!(bots.list().await.expect("list").is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn create_and_start_rolls_back_on_task_failure() {
    let env = TestEnv::new("rollback").await;
    // An init that does not exist: Tasks.Create/Start fails; no record may stay.
    let spec = env.spec("rb").with_args(["/no/such/init"]);
    let err = env
        .bots
        .create_and_start("rb", &spec)
        .await
        .expect_err("start must fail");
    assert!(matches!(err, Error::Rpc { .. }), "{err:?}");
    assert!(
        env.bots.list().await.expect("list").is_empty(),
        "record rolled back"
    );
    assert!(env.client.list_tasks().await.expect("tasks").is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn find_checks_ids_and_labels() {
    let env = TestEnv::new("find").await;
    let bots = &env.bots;

    assert!(matches!(
        bots.find("nobody").await,
        Err(Error::NotFound { container_id }) if container_id == "mcp-nobody"
    ));
    for bad in ["../etc", "a/b", "", "x y"] {
        assert!(
            matches!(bots.find(bad).await, Err(Error::InvalidBotId { .. })),
            "{bad:?}"
        );
    }

    raw_create_container(&env.client, "mcp-alice", &[(BOT_LABEL, "bob")], None).await;
    match bots.find("alice").await {
        Err(Error::BotMismatch {
            container_id,
            expected,
            found,
        }) => {
            assert_eq!(container_id, "mcp-alice");
            assert_eq!(expected, "alice");
            assert_eq!(found, "bob");
        }
        other => panic!("expected BotMismatch, got {other:?}"),
    }

    raw_create_container(&env.client, "mcp-carol", &[("other", "x")], None).await;
    assert!(matches!(
        bots.find("carol").await,
        Err(Error::Unlabelled { container_id }) if container_id == "mcp-carol"
    ));
    let lenient = mcpod_containerd::Bots::new(env.client.clone(), {
        let mut c = BotConfig::default();
        c.allow_unlabelled = true;
        c
    });
    let found = lenient.find("carol").await.expect("unlabelled allowed");
    assert!(!found.labelled);
    // A mismatching label is refused even when unlabelled containers are allowed.
    assert!(matches!(
        lenient.find("alice").await,
        Err(Error::BotMismatch { .. })
    ));

    // A labelled container is found; with start_if_stopped off its missing task is an error.
    env.bots
        .create("dave", &env.spec("dave"))
        .await
        .expect("create");
    let strict = mcpod_containerd::Bots::new(env.client.clone(), {
        let mut c = BotConfig::default();
        c.start_if_stopped = false;
        c
    });
    let dave = strict.find("dave").await.expect("find dave");
    assert!(dave.labelled);
    assert!(matches!(
        strict.ensure_running(&dave).await,
        Err(Error::TaskNotRunning { state, .. }) if state == "no task"
    ));
    assert!(matches!(
        strict
            .exec("dave", &mcpod_containerd::ExecOptions::new(["/bin/true"]))
            .await,
        Err(Error::TaskNotRunning { .. })
    ));
    // The default config starts it.
    let task = env
        .bots
        .ensure_running(&dave)
        .await
        .expect("ensure running");
    assert_eq!(task.status, TaskStatus::Running);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_execs_share_one_start() {
    let env = TestEnv::new("concurrent").await;
    env.bots
        .create("conc", &env.spec("conc"))
        .await
        .expect("create");
    let mut handles = Vec::new();
    for i in 0..4 {
        let bots = env.bots.clone();
        handles.push(tokio::spawn(async move {
            let mut p = bots
                .exec(
                    "conc",
                    &mcpod_containerd::ExecOptions::new(["/bin/echo", "hi"]),
                )
                .await
                .unwrap_or_else(|e| panic!("exec {i}: {e}"));
            let mut out = String::new();
            tokio::io::AsyncReadExt::read_to_string(
                &mut p.stdout.take().expect("stdout"),
                &mut out,
            )
            .await
            .expect("read");
            p.shutdown(Duration::from_secs(1)).await.expect("shutdown");
            out
        }));
    }
    let mut pids = std::collections::BTreeSet::new();
    for h in handles {
        assert_eq!(h.await.expect("join"), "hi\n");
        pids.insert(
            env.client
                .task("mcp-conc")
                .await
                .expect("task")
                .map(|t| t.pid),
        );
    }
    assert_eq!(pids.len(), 1, "one task served all four: {pids:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn stop_kills_an_init_that_ignores_sigterm() {
    let mut config = BotConfig::default();
    config.stop_grace = Duration::from_millis(300);
    let env = TestEnv::with_config("stopkill", config).await;
    // A bare sleep as PID 1 has no SIGTERM handler: the kernel ignores the signal.
    let spec = env.spec("sk").with_args(["/bin/sleep", "100000"]);
    env.bots.create_and_start("sk", &spec).await.expect("start");
    let t0 = std::time::Instant::now();
    let status = env
        .bots
        .stop("sk")
        .await
        .expect("stop")
        .expect("had a task");
    assert_eq!(status.code, 128 + 9, "needed SIGKILL");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(env.client.task("mcp-sk").await.expect("task").is_none());
    env.cleanup().await;
}
