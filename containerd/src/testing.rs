//! Helpers for tests against a real containerd (feature `test-support`).
//!
//! They make what the public API deliberately refuses to make — container
//! records without the bot label or labelled for another bot — so tests can
//! check that those are refused, plus a busybox root file system and a
//! polling helper. Not for production use.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::{Container, CreateContainerRequest, DeleteContainerRequest};

use crate::Client;

/// Fills `rootfs` with the usual top-level directories, `/bin/busybox`
/// (from the host's busybox-static) and symlinks for `applets`.
pub fn busybox_rootfs(rootfs: &Path, applets: &[&str]) -> std::io::Result<()> {
    for d in ["bin", "proc", "dev", "tmp", "data", "etc", "root", "sys"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "/bin/busybox missing: apt-get install -y busybox-static",
        ));
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox"))?;
    for applet in applets {
        symlink("busybox", rootfs.join("bin").join(applet))?;
    }
    Ok(())
}

/// Polls `f` every 50 ms until it returns true (then true) or `limit`
/// passes (then false).
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn namespaced<T>(client: &Client, msg: T) -> Result<tonic::Request<T>, String> {
    let mut req = tonic::Request::new(msg);
    let ns = client
        .namespace()
        .parse()
        .map_err(|_| format!("namespace {:?} is not valid metadata", client.namespace()))?;
    req.metadata_mut().insert("containerd-namespace", ns);
    Ok(req)
}

async fn containers(
    client: &Client,
) -> Result<ContainersClient<tonic::transport::Channel>, String> {
    let channel = containerd_client::connect(client.config().socket.clone())
        .await
        .map_err(|e| format!("connecting to containerd: {e}"))?;
    Ok(ContainersClient::new(channel))
}

/// Creates a container record with exactly `labels`, with the runtime spec
/// of container `spec_from` (or an empty one), bypassing the checks of
/// [`Bots::create`](crate::Bots::create).
pub async fn raw_create_container(
    client: &Client,
    id: &str,
    labels: &[(&str, &str)],
    spec_from: Option<&str>,
) -> Result<(), String> {
    let spec = match spec_from {
        Some(other) => {
            client
                .get_container(other)
                .await
                .map_err(|e| format!("reading {other}'s spec: {e}"))?
                .spec
        }
        None => None,
    };
    let container = Container {
        id: id.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        runtime: Some(containerd_client::services::v1::container::Runtime {
            name: "io.containerd.runc.v2".into(),
            options: None,
        }),
        spec: spec.or_else(|| {
            Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                value: b"{}".to_vec(),
            })
        }),
        ..Default::default()
    };
    let req = namespaced(
        client,
        CreateContainerRequest {
            container: Some(container),
        },
    )?;
    containers(client)
        .await?
        .create(req)
        .await
        .map(drop)
        .map_err(|s| format!("creating container {id}: {s}"))
}

/// Deletes a container record (not its task); a missing one is fine.
pub async fn raw_delete_container(client: &Client, id: &str) -> Result<(), String> {
    let req = namespaced(client, DeleteContainerRequest { id: id.to_owned() })?;
    match containers(client).await?.delete(req).await {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        Err(s) => Err(format!("deleting container {id}: {s}")),
    }
}
