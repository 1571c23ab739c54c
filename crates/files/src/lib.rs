//! Hosted results (API.md, "Results are hosted").
//!
//! A worker downloads each file a task produced and stores it here under
//! `<task id>/<name>`; the dispatcher serves it at a signed link that needs no API key and
//! works until the task's retention ends; then a sweeper deletes the task's objects.
//! [`Files`] is the store (`object_store`: a local directory, or an S3-compatible bucket),
//! [`LinkSigner`] signs and checks the links, [`split_grid`] cuts a Midjourney grid into
//! its four images.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use hmac::{Hmac, Mac};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload};
use sha2::Sha256;
use switchyard_core::config::{StorageConfig, StorageKind};

/// The store could not be opened or used, or a file is not what it should be.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The `storage` configuration cannot be used.
    #[error("storage configuration: {0}")]
    Config(String),
    /// The store refused or failed an operation (never names credentials).
    #[error("object store: {0}")]
    Store(String),
    /// A task id or file name that cannot name an object.
    #[error("bad object name: {0}")]
    Name(String),
    /// An image that cannot be read or cut.
    #[error("image: {0}")]
    Image(String),
}

impl From<object_store::Error> for FilesError {
    fn from(e: object_store::Error) -> Self {
        // object_store's messages name the path and the operation, not credentials.
        FilesError::Store(e.to_string())
    }
}

/// Where hosted results live.
#[derive(Clone)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Files({})", self.store)
    }
}

/// The output field that lists a task's hosted files (JSON pointer → file name): written
/// by the worker that stored them, read (and never shown) by the dispatcher.
pub const HOSTED_FIELD: &str = "hosted_files";

/// `s` as a stored file's name stem: every character but letters, digits, `-` and `_`
/// turned into `_`, at most 100 characters; `file` when nothing is left. (With an
/// extension, the result is a name `safe` accepts.)
pub fn safe_name(s: &str) -> String {
    let out: String = s
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() { "file".into() } else { out }
}

/// Whether `s` is a safe object name part: letters, digits, `-`, `_`, `.`; not empty, not
/// starting with a dot, at most 200 characters.
fn safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn object_path(task_id: &str, name: &str) -> Result<Path, FilesError> {
    if !safe(task_id) || !safe(name) {
        return Err(FilesError::Name(format!("{task_id}/{name}")));
    }
    Ok(Path::from(format!("{task_id}/{name}")))
}

impl Files {
    /// The store `config` names, or `None` when hosting is off. A local directory is
    /// created when missing.
    pub fn open(config: &StorageConfig) -> Result<Option<Files>, FilesError> {
        let store: Arc<dyn ObjectStore> = match config.kind {
            StorageKind::Off => return Ok(None),
            StorageKind::Local => {
                std::fs::create_dir_all(&config.dir).map_err(|e| {
                    FilesError::Config(format!("cannot create storage.dir {}: {e}", config.dir))
                })?;
                Arc::new(LocalFileSystem::new_with_prefix(&config.dir).map_err(|e| {
                    FilesError::Config(format!("cannot use storage.dir {}: {e}", config.dir))
                })?)
            }
            StorageKind::S3 => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&config.s3_bucket)
                    .with_region(&config.s3_region)
                    .with_allow_http(config.s3_allow_http);
                if !config.s3_endpoint.is_empty() {
                    // An S3-compatible server: path-style addressing, as they expect.
                    b = b
                        .with_endpoint(&config.s3_endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                if !config.s3_access_key_id.is_empty() {
                    b = b
                        .with_access_key_id(&config.s3_access_key_id)
                        .with_secret_access_key(&config.s3_secret_access_key);
                }
                let s3 = b.build().map_err(|e| {
                    FilesError::Config(format!(
                        "cannot use the S3 bucket {}: {e}",
                        config.s3_bucket
                    ))
                })?;
                let prefix = config.s3_prefix.trim_matches('/');
                if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix))
                }
            }
        };
        Ok(Some(Files { store }))
    }

    /// Store one file of a task (replacing one of the same name).
    pub async fn put(&self, task_id: &str, name: &str, bytes: Bytes) -> Result<(), FilesError> {
        let path = object_path(task_id, name)?;
        self.store.put(&path, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// One file of a task, or `None` when there is none (never stored, or deleted).
    pub async fn get(&self, task_id: &str, name: &str) -> Result<Option<Bytes>, FilesError> {
        let path = object_path(task_id, name)?;
        match self.store.get(&path).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The names of a task's stored files.
    pub async fn names(&self, task_id: &str) -> Result<Vec<String>, FilesError> {
        if !safe(task_id) {
            return Err(FilesError::Name(task_id.to_string()));
        }
        let prefix = Path::from(task_id);
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .collect())
    }

    /// Delete every file of a task; returns how many there were.
    pub async fn delete_task(&self, task_id: &str) -> Result<usize, FilesError> {
        let names = self.names(task_id).await?;
        for name in &names {
            match self.store.delete(&object_path(task_id, name)?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(names.len())
    }
}

/// The media type of a hosted file, by its name's extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Signs and checks hosted-file links: HMAC-SHA256 over the task id, the file name and
/// the expiry, with a key every dispatcher shares (derived from the master key).
#[derive(Clone)]
pub struct LinkSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    /// A signer with `key`.
    pub fn new(key: [u8; 32]) -> Self {
        LinkSigner { key }
    }

    fn mac(&self, task_id: &str, name: &str, expires_s: u64) -> Hmac<Sha256> {
        // A key of any length is accepted by HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(task_id.as_bytes());
        mac.update(b"\0");
        mac.update(name.as_bytes());
        mac.update(b"\0");
        mac.update(expires_s.to_string().as_bytes());
        mac
    }

    /// The signature of a link (hex).
    pub fn sign(&self, task_id: &str, name: &str, expires_s: u64) -> String {
        hex::encode(self.mac(task_id, name, expires_s).finalize().into_bytes())
    }

    /// Whether `sig` signs this link (compared in constant time).
    pub fn verify(&self, task_id: &str, name: &str, expires_s: u64, sig: &str) -> bool {
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        self.mac(task_id, name, expires_s)
            .verify_slice(&sig)
            .is_ok()
    }

    /// The link to a hosted file: `<base>/files/<task>/<name>?expires=<unix s>&sig=<hex>`.
    pub fn link(&self, base: &str, task_id: &str, name: &str, expires_s: u64) -> String {
        format!(
            "{}/files/{task_id}/{name}?expires={expires_s}&sig={}",
            base.trim_end_matches('/'),
            self.sign(task_id, name, expires_s)
        )
    }
}

/// Cut a grid image (PNG) into its four images, as PNGs: top left, top right, bottom left,
/// bottom right (Midjourney's U1–U4 order).
pub fn split_grid(grid: &[u8]) -> Result<[Vec<u8>; 4], FilesError> {
    let img = image::load_from_memory(grid).map_err(|e| FilesError::Image(e.to_string()))?;
    let (w, h) = (img.width() / 2, img.height() / 2);
    if w == 0 || h == 0 {
        return Err(FilesError::Image(format!(
            "a {}x{} image is no grid",
            img.width(),
            img.height()
        )));
    }
    let cut = |x: u32, y: u32| -> Result<Vec<u8>, FilesError> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.crop_imm(x, y, w, h)
            .write_to(&mut out, image::ImageFormat::Png)
            .map_err(|e| FilesError::Image(e.to_string()))?;
        Ok(out.into_inner())
    };
    Ok([cut(0, 0)?, cut(w, 0)?, cut(0, h)?, cut(w, h)?])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn grid_png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let q = (x >= w / 2) as u8 + 2 * (y >= h / 2) as u8;
            image::Rgb([q * 60, 255 - q * 60, 7])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_grid_is_cut_into_its_four_quadrants_in_order() {
        let parts = split_grid(&grid_png(64, 40)).unwrap();
        for (q, p) in parts.iter().enumerate() {
            let img = image::load_from_memory(p).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), (32, 20));
            let q = q as u8;
            assert!(img.pixels().all(|px| px.0 == [q * 60, 255 - q * 60, 7]));
        }
        assert!(matches!(
            split_grid(b"not a png"),
            Err(FilesError::Image(_))
        ));
    }

    #[test]
    fn links_verify_only_as_signed() {
        let s = LinkSigner::new([7; 32]);
        let sig = s.sign("task1", "image.png", 100);
        assert!(s.verify("task1", "image.png", 100, &sig));
        assert!(!s.verify("task1", "image.png", 101, &sig));
        assert!(!s.verify("task2", "image.png", 100, &sig));
        assert!(!s.verify("task1", "image_0.png", 100, &sig));
        assert!(!s.verify("task1", "image.png", 100, "zz"));
        assert!(!LinkSigner::new([8; 32]).verify("task1", "image.png", 100, &sig));
        assert_eq!(
            s.link("http://h/", "task1", "a.png", 5),
            format!(
                "http://h/files/task1/a.png?expires=5&sig={}",
                s.sign("task1", "a.png", 5)
            )
        );
    }

    #[tokio::test]
    async fn a_local_store_keeps_and_deletes_a_tasks_files() {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            dir: dir.path().join("files").display().to_string(),
            ..StorageConfig::default()
        };
        let files = Files::open(&config).unwrap().unwrap();
        files
            .put("t1", "a.png", Bytes::from_static(b"A"))
            .await
            .unwrap();
        files
            .put("t1", "b.mp4", Bytes::from_static(b"B"))
            .await
            .unwrap();
        files
            .put("t2", "a.png", Bytes::from_static(b"C"))
            .await
            .unwrap();
        assert_eq!(files.get("t1", "a.png").await.unwrap().unwrap(), "A");
        assert_eq!(files.get("t1", "zz.png").await.unwrap(), None);
        assert!(files.get("../etc", "passwd").await.is_err());
        assert_eq!(files.delete_task("t1").await.unwrap(), 2);
        assert_eq!(files.get("t1", "a.png").await.unwrap(), None);
        assert_eq!(files.names("t1").await.unwrap(), Vec::<String>::new());
        assert_eq!(files.get("t2", "a.png").await.unwrap().unwrap(), "C");
        let off = StorageConfig {
            kind: StorageKind::Off,
            ..StorageConfig::default()
        };
        assert!(Files::open(&off).unwrap().is_none());
    }
}
