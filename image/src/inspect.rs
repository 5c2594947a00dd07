//! Format safety, as Glance's format inspector: look at the first bytes of image data
//! while it streams, find its real format, and refuse data that does not match its
//! declared `disk_format` or that would make a hypervisor read other files of the host
//! (a qcow2 backing file or external data file, VMDK descriptors pointing at other
//! extents). Also reads the virtual size.

/// How many leading bytes the inspector needs.
pub const HEADER_BYTES: usize = 64 * 1024;

pub const DISK_FORMATS: &[&str] = &["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"];
pub const CONTAINER_FORMATS: &[&str] = &["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    Raw,
    Qcow2 {
        virtual_size: u64,
        backing_file: bool,
        data_file: bool,
    },
    Vmdk {
        virtual_size: u64,
        create_type: Option<String>,
    },
    VmdkDescriptor,
    Vhd {
        virtual_size: u64,
    },
    Vhdx,
    Vdi {
        virtual_size: u64,
    },
    Iso,
    /// Formats no image here may be (a hypervisor probing them could open other host
    /// files, or they hide a disk behind encryption): QED (backing files), VMDK3
    /// (`COWD`), LUKS, Parallels.
    Refused(&'static str),
}

impl Detected {
    pub fn name(&self) -> &'static str {
        match self {
            Detected::Raw => "raw",
            Detected::Qcow2 { .. } => "qcow2",
            Detected::Vmdk { .. } | Detected::VmdkDescriptor => "vmdk",
            Detected::Vhd { .. } => "vhd",
            Detected::Vhdx => "vhdx",
            Detected::Vdi { .. } => "vdi",
            Detected::Iso => "iso",
            Detected::Refused(name) => name,
        }
    }

    pub fn virtual_size(&self) -> Option<u64> {
        match self {
            Detected::Qcow2 { virtual_size, .. }
            | Detected::Vmdk { virtual_size, .. }
            | Detected::Vhd { virtual_size }
            | Detected::Vdi { virtual_size } => Some(*virtual_size),
            _ => None,
        }
    }
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).map(|s| u64::from_be_bytes(s.try_into().unwrap()))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_be_bytes(s.try_into().unwrap()))
}
fn le64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap()))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes(s.try_into().unwrap()))
}

/// Finds the format of data from its first bytes (up to [`HEADER_BYTES`]).
pub fn detect(head: &[u8]) -> Detected {
    if head.starts_with(b"QFI\xfb") {
        let version = be32(head, 4).unwrap_or(0);
        let backing = be64(head, 8).unwrap_or(0) != 0;
        // qcow2 v3 incompatible feature bit 2: the data lives in an external file.
        let data_file = version >= 3 && be64(head, 72).unwrap_or(0) & 0b100 != 0;
        return Detected::Qcow2 { virtual_size: be64(head, 24).unwrap_or(0), backing_file: backing, data_file };
    }
    if head.starts_with(b"KDMV") {
        let capacity = le64(head, 12).unwrap_or(0);
        let desc_offset = le64(head, 28).unwrap_or(0) as usize * 512;
        let desc_size = le64(head, 36).unwrap_or(0) as usize * 512;
        let create_type = head
            .get(desc_offset..(desc_offset + desc_size).min(head.len()))
            .and_then(|d| {
                std::str::from_utf8(d)
                    .ok()
                    .or_else(|| std::str::from_utf8(&d[..d.iter().position(|b| *b == 0).unwrap_or(d.len())]).ok())
            })
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let l = l.trim();
                    l.strip_prefix("createType=").map(|v| v.trim_matches('"').to_string())
                })
            });
        return Detected::Vmdk { virtual_size: capacity * 512, create_type };
    }
    if vmdk_descriptor(head) {
        return Detected::VmdkDescriptor;
    }
    for (magic, name) in [
        (&b"QED\0"[..], "qed"),
        (&b"COWD"[..], "vmdk3"),
        (&b"LUKS\xba\xbe"[..], "luks"),
        (&b"WithoutFreeSpace"[..], "parallels"),
        (&b"WithouFreSpacExt"[..], "parallels"),
    ] {
        if head.starts_with(magic) {
            return Detected::Refused(name);
        }
    }
    if head.starts_with(b"conectix") {
        return Detected::Vhd { virtual_size: be64(head, 48).unwrap_or(0) };
    }
    if head.starts_with(b"vhdxfile") {
        return Detected::Vhdx;
    }
    if le32(head, 0x40) == Some(0xbeda_107f) {
        return Detected::Vdi { virtual_size: le64(head, 0x170).unwrap_or(0) };
    }
    if head.get(0x8001..0x8006) == Some(b"CD001") {
        return Detected::Iso;
    }
    Detected::Raw
}

/// A VMDK text descriptor as QEMU's probe finds one: after comment lines (`#`) and
/// blank ones, a line `version=N`. The `# Disk DescriptorFile` header is optional to
/// QEMU, so it is not required here either.
fn vmdk_descriptor(head: &[u8]) -> bool {
    for line in head.split(|b| *b == b'\n') {
        let t = line.trim_ascii();
        if t.is_empty() || t.starts_with(b"#") {
            continue;
        }
        return t.starts_with(b"version=");
    }
    false
}

/// Checks data against its declared format; the error is a message for the caller.
pub fn check(declared: &str, container: &str, detected: &Detected) -> Result<(), String> {
    // Dangerous whatever was declared: these make the hypervisor open host files.
    match detected {
        Detected::Qcow2 { backing_file: true, .. } => {
            return Err("Image data is a qcow2 with a backing file, which is not allowed.".into())
        }
        Detected::Qcow2 { data_file: true, .. } => {
            return Err("Image data is a qcow2 with an external data file, which is not allowed.".into())
        }
        Detected::VmdkDescriptor => {
            return Err("Image data is a VMDK descriptor referring to other files, which is not allowed.".into())
        }
        Detected::Refused(name) => return Err(format!("Image data is in {name} format, which is not allowed.")),
        Detected::Vmdk { create_type, .. } => {
            let ok = matches!(create_type.as_deref(), Some("monolithicSparse") | Some("streamOptimized"));
            if !ok {
                return Err(format!(
                    "VMDK subformat {} is not allowed: only monolithicSparse and streamOptimized are.",
                    create_type.as_deref().unwrap_or("unknown")
                ));
            }
        }
        _ => {}
    }
    if matches!(container, "ova" | "docker" | "compressed") {
        return Ok(());
    }
    let real = detected.name();
    let fine = match declared {
        "raw" => matches!(detected, Detected::Raw | Detected::Iso),
        "iso" => matches!(detected, Detected::Iso | Detected::Raw),
        "qcow2" | "vmdk" | "vhd" | "vhdx" | "vdi" => real == declared,
        // Kernel, ramdisk and machine images and ploop are not inspected, but must not
        // smuggle in a disk format.
        _ => matches!(detected, Detected::Raw | Detected::Iso),
    };
    if fine {
        Ok(())
    } else {
        Err(format!("Image data is in {real} format, which does not match its disk_format {declared}."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qcow2(backing: bool, data_file: bool) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        if backing {
            h[8..16].copy_from_slice(&512u64.to_be_bytes());
        }
        h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        if data_file {
            h[72..80].copy_from_slice(&4u64.to_be_bytes());
        }
        h
    }

    #[test]
    fn qcow2_is_recognised_with_its_size() {
        let d = detect(&qcow2(false, false));
        assert_eq!(d.virtual_size(), Some(1 << 30));
        assert!(check("qcow2", "bare", &d).is_ok());
        assert!(check("raw", "bare", &d).unwrap_err().contains("does not match"));
    }

    #[test]
    fn backing_and_data_files_are_refused_whatever_is_declared() {
        for d in [detect(&qcow2(true, false)), detect(&qcow2(false, true))] {
            assert!(check("qcow2", "bare", &d).is_err());
            assert!(check("raw", "bare", &d).is_err());
        }
        assert!(check("vmdk", "bare", &detect(b"# Disk DescriptorFile\nRW 1 FLAT \"/etc/shadow\" 0\n")).is_err());
    }

    #[test]
    fn descriptors_and_formats_that_reach_other_files_are_refused_whatever_is_declared() {
        let descriptors: [&[u8]; 4] = [
            b"version=1\nCID=fffffffe\ncreateType=\"monolithicFlat\"\nRW 1 FLAT \"/etc/shadow\" 0\n",
            b"\n  # a comment\n\nversion=3\r\nRW 1 FLAT \"/dev/sda\" 0\r\n",
            b"# Disk DescriptorFile\nversion=1\n",
            b"#\n#\n   version=2\n",
        ];
        for d in descriptors {
            for declared in ["raw", "vmdk", "qcow2", "iso", "aki"] {
                assert!(check(declared, "bare", &detect(d)).is_err(), "{declared}: {}", String::from_utf8_lossy(d));
            }
        }
        assert_eq!(detect(b"# just text\nhello version=1\n"), Detected::Raw);
        for magic in [&b"QED\0rest"[..], b"COWDxxxx", b"LUKS\xba\xbe\0\x01", b"WithoutFreeSpace\0"] {
            assert!(check("raw", "bare", &detect(magic)).is_err());
        }
    }

    #[test]
    fn raw_data_declared_as_qcow2_is_refused() {
        let d = detect(&[0u8; 4096]);
        assert_eq!(d, Detected::Raw);
        assert!(check("raw", "bare", &d).is_ok());
        assert!(check("qcow2", "bare", &d).unwrap_err().contains("raw format"));
    }

    #[test]
    fn iso_is_recognised() {
        let mut h = vec![0u8; 0x9000];
        h[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(detect(&h), Detected::Iso);
        assert!(check("iso", "bare", &Detected::Iso).is_ok());
    }
}
