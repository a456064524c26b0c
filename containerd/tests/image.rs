//! Bot containers from an OCI image tarball, against a real containerd.
//! Run with `--features containerd-tests` (see scripts/containerd-env.sh).
#![cfg(feature = "containerd-tests")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::TestEnv;
use mcpod_containerd::{BotSpec, Error, ExecOptions};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

fn digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn tar_bytes(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().expect("finish tar")
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data).expect("append file");
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Directory);
    b.append_data(&mut h, path, std::io::empty())
        .expect("append dir");
}

fn add_link(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o777);
    h.set_entry_type(tar::EntryType::Symlink);
    b.append_link(&mut h, path, target).expect("append symlink");
}

/// An OCI image layout tarball with two layers: busybox, then one more file.
fn build_image(out: &Path) {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    let layer1 = tar_bytes(|b| {
        for d in ["bin/", "proc/", "dev/", "tmp/", "etc/", "root/", "data/"] {
            add_dir(b, d);
        }
        add_file(b, "bin/busybox", &busybox, 0o755);
        for applet in ["sh", "cat", "sleep", "echo"] {
            add_link(b, &format!("bin/{applet}"), "busybox");
        }
        add_file(b, "etc/hello", b"from layer one\n", 0o644);
    });
    let layer2 = tar_bytes(|b| add_file(b, "etc/second", b"from layer two\n", 0o644));
    let (l1, l2) = (digest(&layer1), digest(&layer2));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin", "FROM_IMAGE=yes"], "WorkingDir": "/",
                   "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [l1, l2]}
    }))
    .expect("config json");
    let layer_type = "application/vnd.oci.image.layer.v1.tar";
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(&config), "size": config.len()},
        "layers": [
            {"mediaType": layer_type, "digest": l1, "size": layer1.len()},
            {"mediaType": layer_type, "digest": l2, "size": layer2.len()}
        ]
    }))
    .expect("manifest json");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": digest(&manifest), "size": manifest.len(),
                       "platform": {"os": "linux", "architecture": "amd64"}}]
    }))
    .expect("index json");
    let outer = tar_bytes(|b| {
        add_file(b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644);
        add_file(b, "index.json", &index, 0o644);
        add_dir(b, "blobs/");
        add_dir(b, "blobs/sha256/");
        for blob in [&layer1, &layer2, &config, &manifest] {
            let name = format!("blobs/sha256/{}", &digest(blob)[7..]);
            add_file(b, &name, blob, 0o644);
        }
    });
    std::fs::write(out, outer).expect("write image tarball");
}

async fn exec_output(env: &TestEnv, bot: &str, args: &[&str]) -> String {
    let mut p = env
        .bots
        .exec(bot, &ExecOptions::new(args.iter().copied()))
        .await
        .expect("exec");
    let mut out = String::new();
    p.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .await
        .expect("read");
    p.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    out
}

#[tokio::test]
async fn bot_from_imported_image() {
    let env = TestEnv::new("image").await;
    let tarball = env.tmp.path().join("image.tar");
    build_image(&tarball);
    let name = "mcpod.test/busybox:latest";
    let image = env
        .client
        .import_image(&tarball, name, "")
        .await
        .expect("import");
    assert_eq!(image.env, ["PATH=/bin", "FROM_IMAGE=yes"]);
    assert_eq!(image.cmd, ["/bin/sh"]);
    // Importing again is fine (content and snapshots exist already).
    let again = env
        .client
        .import_image(&tarball, name, "")
        .await
        .expect("re-import");
    assert_eq!(again.chain_id, image.chain_id);

    let spec = BotSpec::default().with_data_dir(env.data_root.join("img"));
    let task = env
        .bots
        .create_and_start_from_image("img", &image, &spec)
        .await
        .expect("create and start from image");
    assert!(task.pid > 0);
    assert_eq!(
        exec_output(&env, "img", &["/bin/cat", "/etc/hello", "/etc/second"]).await,
        "from layer one\nfrom layer two\n"
    );
    assert_eq!(
        exec_output(&env, "img", &["/bin/sh", "-c", "echo $FROM_IMAGE"]).await,
        "yes\n"
    );
    // Writes land in the container's own snapshot, not in the image.
    exec_output(&env, "img", &["/bin/sh", "-c", "echo changed > /etc/hello"]).await;

    // A second container of the same image is independent of the first.
    env.bots
        .create_and_start_from_image("img2", &image, &BotSpec::default())
        .await
        .expect("second container");
    assert_eq!(
        exec_output(&env, "img2", &["/bin/cat", "/etc/hello"]).await,
        "from layer one\n"
    );

    // Delete removes the snapshot too: re-creating the same bot works.
    env.bots.delete("img").await.expect("delete");
    env.bots
        .create_from_image("img", &image, &BotSpec::default())
        .await
        .expect("re-create after delete (snapshot was removed)");
    assert!(matches!(
        env.bots
            .create_from_image("img", &image, &BotSpec::default())
            .await,
        Err(Error::AlreadyExists { .. })
    ));
    env.bots.delete("img").await.expect("delete");
    env.bots.delete("img2").await.expect("delete 2");
    env.client.delete_image(name).await.expect("delete image");
    env.client
        .delete_image(name)
        .await
        .expect("delete image twice");
    env.cleanup().await;
}

#[tokio::test]
async fn malformed_tarball_is_an_error() {
    let env = TestEnv::new("badimage").await;
    let path = env.tmp.path().join("bad.tar");
    std::fs::write(&path, tar_bytes(|b| add_file(b, "hello", b"x", 0o644))).expect("write");
    assert!(matches!(
        env.client.import_image(&path, "bad", "").await,
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        env.client
            .import_image(Path::new("/nonexistent.tar"), "bad", "")
            .await,
        Err(Error::Io { .. })
    ));
}
