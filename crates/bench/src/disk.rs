//! What the disk under a folder did over a stretch of a run, from the kernel's counters
//! in `/proc/diskstats`: how many writes and flushes reached the device, and how long
//! the device took over them. The same code can cost twice as much on one VM as on
//! another because its virtual disk is slower; these figures show which it was.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context;

/// The counters of one block device at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskCounters {
    pub writes: u64,
    pub write_ms: u64,
    pub flushes: u64,
    pub flush_ms: u64,
}

/// The block device a folder is on, by its kernel numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    major: u64,
    minor: u64,
}

impl Device {
    /// The device holding `folder`; `None` when it is on no block device (tmpfs, overlay).
    ///
    /// # Errors
    ///
    /// When the folder cannot be read.
    pub fn of(folder: &Path) -> anyhow::Result<Option<Self>> {
        let dev = std::fs::metadata(folder)
            .with_context(|| format!("cannot read {}", folder.display()))?
            .dev();
        // The kernel's split of a device number, as glibc's `major` and `minor` do it.
        let device = Self {
            major: ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
            minor: (dev & 0xff) | ((dev >> 12) & !0xff),
        };
        Ok((device.major != 0).then_some(device))
    }

    /// Its counters now; `None` when the kernel lists no such device.
    ///
    /// # Errors
    ///
    /// When `/proc/diskstats` cannot be read.
    pub fn counters(self) -> anyhow::Result<Option<DiskCounters>> {
        let stats = std::fs::read_to_string("/proc/diskstats").context("/proc/diskstats")?;
        Ok(stats.lines().find_map(|line| self.parse(line)))
    }

    fn parse(self, line: &str) -> Option<DiskCounters> {
        let fields: Vec<u64> = line
            .split_whitespace()
            .enumerate()
            .filter(|(index, _)| *index != 2)
            .map(|(_, field)| field.parse().ok())
            .collect::<Option<_>>()?;
        // major, minor, then the counters (the name left out); flushes since Linux 5.5.
        if fields.len() < 2 || fields[0] != self.major || fields[1] != self.minor {
            return None;
        }
        let at = |index: usize| fields.get(index + 1).copied().unwrap_or(0);
        Some(DiskCounters {
            writes: at(5),
            write_ms: at(8),
            flushes: at(16),
            flush_ms: at(17),
        })
    }
}

impl DiskCounters {
    /// What happened between `earlier` and these.
    #[must_use]
    pub fn since(self, earlier: Self) -> Self {
        Self {
            writes: self.writes.saturating_sub(earlier.writes),
            write_ms: self.write_ms.saturating_sub(earlier.write_ms),
            flushes: self.flushes.saturating_sub(earlier.flushes),
            flush_ms: self.flush_ms.saturating_sub(earlier.flush_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diskstats_line_is_read_for_its_device_only() {
        let device = Device {
            major: 254,
            minor: 0,
        };
        let line = " 254       0 vda 72635 10252 9287522 164819 143996 92328 43118648 723647 0 \
                    83168 922855 12502 73 11857560 15942 28889 18445";
        assert_eq!(
            device.parse(line),
            Some(DiskCounters {
                writes: 143_996,
                write_ms: 723_647,
                flushes: 28_889,
                flush_ms: 18_445,
            })
        );
        let partition = " 254       1 vda1 1 0 8 0 2 0 16 0 0 0 0";
        assert_eq!(device.parse(partition), None);
        let before_flushes = " 254       0 vda 1 0 8 0 2 0 16 3 0 0 0";
        assert_eq!(device.parse(before_flushes).unwrap().flushes, 0);
    }
}
