//! The `rbd` backend against a real Ceph cluster: `STRATUS_TEST_CEPH_CONF` names its
//! configuration file, with a pool `volumes` that user `cinder` may use (what
//! `scripts/ceph-dev.sh start` makes; the whole test suite starts one). Without it the
//! test says so and passes: there is nothing to test against.
//!
//! Every operation runs twice (a saga step may), and the bytes are checked: written
//! through QEMU's own RBD driver, read back from snapshots, copies, clones and exports.

use std::path::Path;
use stratus_volume::driver::rbd::{RbdDriver, RbdOptions};
use stratus_volume::driver::{Connector, Source, VolumeDriver};

fn cluster() -> Option<String> {
    let conf = std::env::var("STRATUS_TEST_CEPH_CONF").ok().filter(|c| !c.is_empty());
    if conf.is_none() {
        eprintln!("STRATUS_TEST_CEPH_CONF is not set: the rbd backend is not tested here");
    }
    conf
}

fn qemu(args: &[&str]) -> String {
    let out = std::process::Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `text` at `offset` of image `name` through QEMU's RBD driver.
fn write_at(conf: &str, name: &str, offset: u64, text: &str) {
    let target = format!("rbd:volumes/{name}:id=cinder:conf={conf}");
    qemu(&["qemu-io", "-f", "raw", "-c", &format!("write -P 0x{:02x} {offset} 4096", text.as_bytes()[0]), &target]);
}

/// The first byte of each 4 KiB block read at `offset` of a raw file.
fn byte_at(file: &Path, offset: u64) -> u8 {
    use std::io::{Read, Seek};
    let mut f = std::fs::File::open(file).unwrap();
    f.seek(std::io::SeekFrom::Start(offset)).unwrap();
    let mut b = [0u8; 1];
    f.read_exact(&mut b).unwrap();
    b[0]
}

#[tokio::test]
async fn rbd_backend_keeps_bytes_through_every_operation() {
    let Some(conf) = cluster() else { return };
    let d = RbdDriver::new(RbdOptions {
        pool: "volumes".into(),
        conf: conf.clone(),
        user: "cinder".into(),
        secret_uuid: "5b6c0e7e-1111-4a4a-8b8b-0123456789ab".into(),
        host: "storage-1".into(),
    })
    .unwrap();
    let work = WorkDir(std::env::temp_dir().join(format!("stratus-rbd-test-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&work.0).unwrap();
    let work = &work.0;
    let id = |_: &str| uuid::Uuid::new_v4().to_string();
    let (v1, v2, v3, v4, s1, img) = (id("v1"), id("v2"), id("v3"), id("v4"), id("s1"), id("img"));

    let room = d.capacity().await.unwrap();
    assert!(room.free_gb > 0.5 && room.total_gb >= room.free_gb, "{room:?}");
    assert_eq!(d.storage_protocol(), "ceph");

    // An empty volume, made twice: one image of 1 GiB.
    for _ in 0..2 {
        d.create(&v1, 1, Source::Empty).await.unwrap();
    }
    assert_eq!(d.size_of(&v1).await.unwrap(), Some(1));
    assert_eq!(d.size_of(&id("none")).await.unwrap(), None);
    write_at(&conf, &format!("volume-{v1}"), 0, "a");

    // A snapshot keeps what the volume held; a write after it does not reach it; a
    // volume from the snapshot holds the old bytes; a revert brings them back.
    for _ in 0..2 {
        d.snapshot(&v1, &s1).await.unwrap();
    }
    assert!(d.has_snapshot(&v1, &s1).await.unwrap());
    write_at(&conf, &format!("volume-{v1}"), 0, "b");
    for _ in 0..2 {
        d.create(&v2, 2, Source::Snapshot { volume: &v1, id: &s1 }).await.unwrap();
    }
    assert_eq!(d.size_of(&v2).await.unwrap(), Some(2), "a copy grows to the size asked");
    let out = work.join("v2.raw");
    d.export(&v2, "raw", &out).await.unwrap();
    assert_eq!(byte_at(&out, 0), b'a');
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 2 << 30);
    d.export_snapshot(&v1, &s1, "qcow2", &work.join("s1.qcow2")).await.unwrap();
    assert!(qemu(&["qemu-img", "info", "-f", "qcow2", work.join("s1.qcow2").to_str().unwrap()]).contains("1 GiB"));
    for _ in 0..2 {
        d.revert(&v1, &s1).await.unwrap();
    }
    d.export(&v1, "raw", &out).await.unwrap();
    assert_eq!(byte_at(&out, 0), b'a', "reverted");

    // A copy of a volume, and growth.
    for _ in 0..2 {
        d.create(&v3, 1, Source::Volume(&v1)).await.unwrap();
        d.extend(&v3, 3).await.unwrap();
    }
    assert_eq!(d.size_of(&v3).await.unwrap(), Some(3));

    // An image kept as a base (a qcow2 file, moved in), a clone of it.
    let src = work.join("image.qcow2");
    let raw = work.join("image.raw");
    std::fs::write(&raw, b"i".repeat(1 << 20)).unwrap();
    qemu(&["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw.to_str().unwrap(), src.to_str().unwrap()]);
    d.keep_image(&img, &src, "qcow2").await.unwrap();
    assert!(!src.exists(), "the download is consumed");
    assert!(d.has_image(&img).await.unwrap());
    for _ in 0..2 {
        d.create(&v4, 1, Source::Image { id: &img }).await.unwrap();
    }
    d.export(&v4, "raw", &out).await.unwrap();
    assert_eq!((byte_at(&out, 0), byte_at(&out, (1 << 20) - 1)), (b'i', b'i'));
    assert!(d.drop_image(&img).await.is_err(), "a base with a clone stays");

    // An import (a backup's restore) writes over the volume in place.
    std::fs::write(&raw, b"r".repeat(4096)).unwrap();
    for _ in 0..2 {
        d.import(&v3, &raw, "raw").await.unwrap();
    }
    d.export(&v3, "raw", &out).await.unwrap();
    assert_eq!((byte_at(&out, 0), std::fs::metadata(&out).unwrap().len()), (b'r', 3 << 30));

    // What compute hosts get: Cinder's rbd connection info.
    let c = d.connection(&v1, Connector { host: "h", ip: None, shared: false }).await.unwrap();
    assert_eq!(c["driver_volume_type"], "rbd");
    assert_eq!(c["data"]["name"], format!("volumes/volume-{v1}"));
    assert_eq!((&c["data"]["auth_username"], c["data"]["hosts"].as_array().map(Vec::len)), (&"cinder".into(), Some(1)));

    // Everything goes, twice; the base once its clone has gone.
    for _ in 0..2 {
        d.delete_snapshot(&v1, &s1).await.unwrap();
        for v in [&v1, &v2, &v3, &v4] {
            d.delete(v).await.unwrap();
        }
        d.drop_image(&img).await.unwrap();
    }
    assert!(!d.has_snapshot(&v1, &s1).await.unwrap());
    assert!(!d.has_image(&img).await.unwrap());
    assert_eq!(d.size_of(&v1).await.unwrap(), None);
}

/// A directory removed when the test ends, passed or not.
struct WorkDir(std::path::PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
