//! Images imported from OCI image-layout tarballs (no registry needed).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, CreateRequest as CreateLeaseRequest, DeleteImageRequest,
    DeleteRequest as DeleteLeaseRequest, Image, UpdateImageRequest, WriteAction,
    WriteContentRequest,
};
use containerd_client::types::{Descriptor, Mount};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::client::{Client, Retry};
use crate::error::{Error, Result};

/// The snapshotter images are unpacked into by default.
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";

const LEASE_HEADER: &str = "containerd-lease";
const CHUNK: usize = 1 << 20;

/// An image imported with [`Client::import_image`] and unpacked into a snapshotter.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ImportedImage {
    /// The image name in containerd.
    pub name: String,
    /// Digest of the image manifest (the image's target).
    pub manifest_digest: String,
    /// The snapshotter holding the unpacked layers.
    pub snapshotter: String,
    /// Chain id of the top layer: the parent snapshot of containers made from it.
    pub chain_id: String,
    /// The lease that keeps the content and snapshots from garbage collection.
    pub lease: String,
    /// `Entrypoint` from the image config.
    pub entrypoint: Vec<String>,
    /// `Cmd` from the image config.
    pub cmd: Vec<String>,
    /// `Env` from the image config.
    pub env: Vec<String>,
    /// `WorkingDir` from the image config.
    pub working_dir: String,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Desc>,
}

#[derive(Deserialize, Clone)]
struct Desc {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize, Clone)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

#[derive(Deserialize)]
struct Manifest {
    config: Desc,
    layers: Vec<Desc>,
}

#[derive(Deserialize)]
struct ImageConfig {
    #[serde(default)]
    config: Option<ProcessConfig>,
    rootfs: RootFs,
}

#[derive(Deserialize, Default)]
struct ProcessConfig {
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    working_dir: Option<String>,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

struct Layout {
    index: Vec<u8>,
    blobs: HashMap<String, Vec<u8>>,
}

/// Reads an OCI image layout tarball into memory (`index.json` and `blobs/<alg>/<hex>`).
fn read_layout(path: &Path) -> std::io::Result<Layout> {
    let file = std::fs::File::open(path)?;
    let mut archive = tar::Archive::new(file);
    let mut index = None;
    let mut blobs = HashMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let p = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        if p == "index.json" {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf)?;
            index = Some(buf);
        } else if let Some(rest) = p.strip_prefix("blobs/")
            && let Some((alg, hex)) = rest.split_once('/')
            && !hex.is_empty()
            && !hex.contains('/')
        {
            let mut buf = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
            entry.read_to_end(&mut buf)?;
            blobs.insert(format!("{alg}:{hex}"), buf);
        }
    }
    let index = index.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no index.json: not an OCI image layout tarball",
        )
    })?;
    Ok(Layout { index, blobs })
}

fn sha256_digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The chain ids of a layer stack (OCI image spec): `chain[0] = diff[0]`,
/// `chain[i] = sha256(chain[i-1] + " " + diff[i])`.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_digest(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

fn image_err(message: impl Into<String>) -> Error {
    Error::Image(message.into())
}

fn is_manifest(media_type: &str) -> bool {
    media_type.is_empty()
        || media_type == "application/vnd.oci.image.manifest.v1+json"
        || media_type == "application/vnd.docker.distribution.manifest.v2+json"
}

fn is_index(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.index.v1+json"
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// Picks the linux/amd64 (or platform-less) manifest, following one nested index.
fn pick_manifest(layout: &Layout) -> Result<Desc> {
    let mut index: Index =
        serde_json::from_slice(&layout.index).map_err(|e| image_err(format!("index.json: {e}")))?;
    for _ in 0..2 {
        let fits = |d: &&Desc| {
            d.platform.as_ref().is_none_or(|p| {
                p.os == "linux"
                    && (p.architecture == std::env::consts::ARCH
                        || (p.architecture == "amd64" && std::env::consts::ARCH == "x86_64")
                        || (p.architecture == "arm64" && std::env::consts::ARCH == "aarch64"))
            })
        };
        if let Some(m) = index
            .manifests
            .iter()
            .filter(fits)
            .find(|d| is_manifest(&d.media_type))
        {
            return Ok(m.clone());
        }
        match index.manifests.iter().find(|d| is_index(&d.media_type)) {
            Some(nested) => {
                let bytes = layout
                    .blobs
                    .get(&nested.digest)
                    .ok_or_else(|| image_err(format!("blob {} missing", nested.digest)))?;
                index = serde_json::from_slice(bytes)
                    .map_err(|e| image_err(format!("nested index: {e}")))?;
            }
            None => break,
        }
    }
    Err(image_err("no manifest for this platform in the image"))
}

impl Client {
    fn leased<T>(&self, msg: T, lease: &str) -> Result<tonic::Request<T>> {
        let mut req = self.request(msg);
        let value = tonic::metadata::MetadataValue::try_from(lease)
            .map_err(|e| Error::Config(format!("lease id: {e}")))?;
        req.metadata_mut().insert(LEASE_HEADER, value);
        Ok(req)
    }

    /// Imports an OCI image-layout tarball (as `docker save` or `skopeo copy
    /// oci-archive:` write) as image `name`, and unpacks its layers into
    /// `snapshotter` ([`DEFAULT_SNAPSHOTTER`] when empty). Content and
    /// snapshots are held by a lease named after the image, so containerd's
    /// garbage collector keeps them until [`Client::delete_image`]. The
    /// tarball is read into memory.
    pub async fn import_image(
        &self,
        tarball: &Path,
        name: &str,
        snapshotter: &str,
    ) -> Result<ImportedImage> {
        if name.is_empty() {
            return Err(Error::Config("image name is empty".into()));
        }
        let snapshotter = if snapshotter.is_empty() {
            DEFAULT_SNAPSHOTTER
        } else {
            snapshotter
        };
        let path = tarball.to_owned();
        let layout = tokio::task::spawn_blocking(move || read_layout(&path))
            .await
            .map_err(|e| image_err(format!("reading tarball: {e}")))?
            .map_err(|e| Error::io(format!("reading image tarball {}", tarball.display()), e))?;
        let manifest_desc = pick_manifest(&layout)?;
        let blob = |digest: &str| {
            layout
                .blobs
                .get(digest)
                .ok_or_else(|| image_err(format!("blob {digest} missing from the tarball")))
        };
        let manifest: Manifest = serde_json::from_slice(blob(&manifest_desc.digest)?)
            .map_err(|e| image_err(format!("manifest: {e}")))?;
        let config: ImageConfig = serde_json::from_slice(blob(&manifest.config.digest)?)
            .map_err(|e| image_err(format!("image config: {e}")))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(image_err(
                "the config's diff_ids do not match the manifest's layers",
            ));
        }
        let lease = format!("mcpod.image.{}", &sha256_digest(name.as_bytes())[7..23]);
        self.create_lease(&lease).await?;

        for d in std::iter::once(&manifest_desc)
            .chain(std::iter::once(&manifest.config))
            .chain(manifest.layers.iter())
        {
            let bytes = blob(&d.digest)?;
            if sha256_digest(bytes) != d.digest {
                return Err(image_err(format!(
                    "blob {} does not match its digest",
                    d.digest
                )));
            }
            self.write_blob(&lease, &d.digest, bytes).await?;
        }

        let chains = chain_ids(&config.rootfs.diff_ids);
        let mut parent = String::new();
        for ((layer, diff_id), chain) in manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .zip(&chains)
        {
            if !self.snapshot_exists(snapshotter, chain).await? {
                self.unpack_layer(&lease, snapshotter, layer, diff_id, chain, &parent)
                    .await?;
            }
            parent = chain.clone();
        }

        let image = Image {
            name: name.to_owned(),
            target: Some(Descriptor {
                media_type: if manifest_desc.media_type.is_empty() {
                    "application/vnd.oci.image.manifest.v1+json".into()
                } else {
                    manifest_desc.media_type.clone()
                },
                digest: manifest_desc.digest.clone(),
                size: manifest_desc.size,
                annotations: HashMap::new(),
            }),
            ..Default::default()
        };
        let created = self
            .call(
                "Images.Create",
                Retry::Unsent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = ImagesClient::new(self.channel());
                    let req = self.request(CreateImageRequest {
                        image: Some(image.clone()),
                        source_date_epoch: None,
                    });
                    async move { c.create(req).await }
                },
            )
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.rpc_code() == Some(tonic::Code::AlreadyExists) => {
                self.call(
                    "Images.Update",
                    Retry::Idempotent,
                    Some(self.rpc_timeout()),
                    || {
                        let mut c = ImagesClient::new(self.channel());
                        let req = self.request(UpdateImageRequest {
                            image: Some(image.clone()),
                            update_mask: None,
                            source_date_epoch: None,
                        });
                        async move { c.update(req).await }
                    },
                )
                .await?;
            }
            Err(e) => return Err(e),
        }
        let process = config.config.unwrap_or_default();
        Ok(ImportedImage {
            name: name.to_owned(),
            manifest_digest: manifest_desc.digest,
            snapshotter: snapshotter.to_owned(),
            chain_id: chains.last().cloned().unwrap_or_default(),
            lease,
            entrypoint: process.entrypoint.unwrap_or_default(),
            cmd: process.cmd.unwrap_or_default(),
            env: process.env.unwrap_or_default(),
            working_dir: process.working_dir.unwrap_or_default(),
        })
    }

    /// Deletes an image record and the lease holding its content and layers
    /// (containers made from it keep their own snapshots). Missing ones are not errors.
    pub async fn delete_image(&self, name: &str) -> Result<()> {
        let r = self
            .call(
                "Images.Delete",
                Retry::Idempotent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = ImagesClient::new(self.channel());
                    let req = self.request(DeleteImageRequest {
                        name: name.to_owned(),
                        sync: false,
                        target: None,
                    });
                    async move { c.delete(req).await }
                },
            )
            .await;
        match r {
            Ok(_) => {}
            Err(e) if e.rpc_code() == Some(tonic::Code::NotFound) => {}
            Err(e) => return Err(e),
        }
        let lease = format!("mcpod.image.{}", &sha256_digest(name.as_bytes())[7..23]);
        let r = self
            .call(
                "Leases.Delete",
                Retry::Idempotent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = LeasesClient::new(self.channel());
                    let req = self.request(DeleteLeaseRequest {
                        id: lease.clone(),
                        sync: false,
                    });
                    async move { c.delete(req).await }
                },
            )
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.rpc_code() == Some(tonic::Code::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create_lease(&self, lease: &str) -> Result<()> {
        let r = self
            .call(
                "Leases.Create",
                Retry::Unsent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = LeasesClient::new(self.channel());
                    let req = self.request(CreateLeaseRequest {
                        id: lease.to_owned(),
                        labels: HashMap::new(),
                    });
                    async move { c.create(req).await }
                },
            )
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.rpc_code() == Some(tonic::Code::AlreadyExists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes one blob to the content store under `lease` (present already: fine).
    async fn write_blob(&self, lease: &str, digest: &str, bytes: &[u8]) -> Result<()> {
        let total = i64::try_from(bytes.len()).map_err(|_| image_err("blob too large"))?;
        let reference = format!("mcpod-import-{digest}");
        let mut msgs = Vec::new();
        let mut offset = 0usize;
        for chunk in bytes.chunks(CHUNK) {
            msgs.push(WriteContentRequest {
                action: WriteAction::Write as i32,
                r#ref: reference.clone(),
                total,
                expected: digest.to_owned(),
                offset: offset as i64,
                data: chunk.to_vec(),
                labels: HashMap::new(),
            });
            offset += chunk.len();
        }
        msgs.push(WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: reference,
            total,
            expected: digest.to_owned(),
            offset: total,
            data: Vec::new(),
            labels: HashMap::new(),
        });
        let req = self.leased(tokio_stream_iter(msgs), lease)?;
        let mut c = ContentClient::new(self.channel());
        let result = async {
            let mut stream = c.write(req).await?.into_inner();
            while stream.message().await?.is_some() {}
            Ok::<(), tonic::Status>(())
        };
        match tokio::time::timeout(self.start_timeout(), result).await {
            Err(_) => Err(Error::Timeout {
                op: "Content.Write",
                after: self.start_timeout(),
            }),
            Ok(Ok(())) => Ok(()),
            Ok(Err(s)) if s.code() == tonic::Code::AlreadyExists => Ok(()),
            Ok(Err(s)) => Err(Error::rpc("Content.Write", &s)),
        }
    }

    async fn snapshot_exists(&self, snapshotter: &str, key: &str) -> Result<bool> {
        let r = self
            .call(
                "Snapshots.Stat",
                Retry::Idempotent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = SnapshotsClient::new(self.channel());
                    let req = self.request(StatSnapshotRequest {
                        snapshotter: snapshotter.to_owned(),
                        key: key.to_owned(),
                    });
                    async move { c.stat(req).await }
                },
            )
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.rpc_code() == Some(tonic::Code::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Prepares an active snapshot `key` on `parent`; returns its mounts.
    pub(crate) async fn prepare_snapshot(
        &self,
        lease: Option<&str>,
        snapshotter: &str,
        key: &str,
        parent: &str,
    ) -> Result<Vec<Mount>> {
        let resp = self
            .call(
                "Snapshots.Prepare",
                Retry::Unsent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = SnapshotsClient::new(self.channel());
                    let msg = PrepareSnapshotRequest {
                        snapshotter: snapshotter.to_owned(),
                        key: key.to_owned(),
                        parent: parent.to_owned(),
                        labels: HashMap::new(),
                    };
                    let req = match lease {
                        Some(l) => self.leased(msg, l),
                        None => Ok(self.request(msg)),
                    };
                    async move {
                        match req {
                            Ok(req) => c.prepare(req).await,
                            Err(e) => Err(tonic::Status::invalid_argument(e.to_string())),
                        }
                    }
                },
            )
            .await?;
        Ok(resp.mounts)
    }

    /// Removes a snapshot; a missing one is not an error.
    pub(crate) async fn remove_snapshot(&self, snapshotter: &str, key: &str) -> Result<()> {
        let r = self
            .call(
                "Snapshots.Remove",
                Retry::Idempotent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = SnapshotsClient::new(self.channel());
                    let req = self.request(RemoveSnapshotRequest {
                        snapshotter: snapshotter.to_owned(),
                        key: key.to_owned(),
                    });
                    async move { c.remove(req).await }
                },
            )
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.rpc_code() == Some(tonic::Code::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn unpack_layer(
        &self,
        lease: &str,
        snapshotter: &str,
        layer: &Desc,
        diff_id: &str,
        chain: &str,
        parent: &str,
    ) -> Result<()> {
        let key = format!("mcpod-extract-{}-{chain}", crate::owner::new_exec_id());
        let mounts = self
            .prepare_snapshot(Some(lease), snapshotter, &key, parent)
            .await?;
        let applied = self
            .call(
                "Diff.Apply",
                Retry::Unsent,
                Some(self.start_timeout()),
                || {
                    let mut c = DiffClient::new(self.channel());
                    let req = self.leased(
                        ApplyRequest {
                            diff: Some(Descriptor {
                                media_type: layer.media_type.clone(),
                                digest: layer.digest.clone(),
                                size: layer.size,
                                annotations: HashMap::new(),
                            }),
                            mounts: mounts.clone(),
                            payloads: HashMap::new(),
                            sync_fs: false,
                        },
                        lease,
                    );
                    async move {
                        match req {
                            Ok(req) => c.apply(req).await,
                            Err(e) => Err(tonic::Status::invalid_argument(e.to_string())),
                        }
                    }
                },
            )
            .await;
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                self.remove_snapshot(snapshotter, &key).await.ok();
                return Err(e);
            }
        };
        if let Some(d) = applied.applied
            && d.digest != diff_id
        {
            self.remove_snapshot(snapshotter, &key).await.ok();
            return Err(image_err(format!(
                "layer {} unpacked to {}, but the config says {diff_id}",
                layer.digest, d.digest
            )));
        }
        let committed = self
            .call(
                "Snapshots.Commit",
                Retry::Unsent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = SnapshotsClient::new(self.channel());
                    let req = self.leased(
                        CommitSnapshotRequest {
                            snapshotter: snapshotter.to_owned(),
                            name: chain.to_owned(),
                            key: key.clone(),
                            labels: HashMap::new(),
                        },
                        lease,
                    );
                    async move {
                        match req {
                            Ok(req) => c.commit(req).await,
                            Err(e) => Err(tonic::Status::invalid_argument(e.to_string())),
                        }
                    }
                },
            )
            .await;
        match committed {
            Ok(()) => Ok(()),
            Err(e) => {
                self.remove_snapshot(snapshotter, &key).await.ok();
                if e.rpc_code() == Some(tonic::Code::AlreadyExists) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }
}

fn tokio_stream_iter<T: Send + 'static>(
    items: Vec<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::iter(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = "sha256:aaaa".to_owned();
        let b = "sha256:bbbb".to_owned();
        let chains = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chains[0], a);
        assert_eq!(chains[1], sha256_digest(b"sha256:aaaa sha256:bbbb"));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn digest_format() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
