//! Which device a run's kernels execute on: burn's flex backend on the CPU
//! (the default, bit-repeatable and tested so), or burn's CUDA backend on an
//! NVIDIA GPU in builds with the `cuda` feature.
//!
//! The device is chosen once per process, like the rayon pool's size: every
//! run of a process trains on it, and the artifact and fingerprint a runner
//! checks before training name it too, so they can never disagree with the
//! runs it then trains.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use burn::tensor::Device;

use crate::TrainError;

/// A compute device as `--device` names it: `cpu`, `cuda` or `cuda:N`.
///
/// ```
/// use reproml_train::device::ComputeDevice;
/// assert_eq!("cuda:1".parse::<ComputeDevice>(), Ok(ComputeDevice::Cuda(1)));
/// assert_eq!("cuda".parse::<ComputeDevice>(), Ok(ComputeDevice::Cuda(0)));
/// assert_eq!(ComputeDevice::Cuda(1).to_string(), "cuda:1");
/// assert!("gpu".parse::<ComputeDevice>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeDevice {
    /// burn's flex backend on the CPU.
    #[default]
    Cpu,
    /// burn's CUDA backend on the GPU with this ordinal.
    Cuda(usize),
}

impl FromStr for ComputeDevice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("unknown device `{s}`: use cpu, cuda or cuda:N (N the GPU's ordinal)");
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => {
                let ordinal = s.strip_prefix("cuda:").ok_or_else(bad)?;
                ordinal.parse().map(Self::Cuda).map_err(|_| bad())
            }
        }
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The process's device, with what the fingerprint says of it.
struct Selected {
    device: ComputeDevice,
    /// Fingerprint entries describing the device (GPU name, driver…).
    entries: BTreeMap<String, String>,
}

static SELECTED: OnceLock<Selected> = OnceLock::new();

/// Chooses the device for every run of this process. A GPU is probed now
/// (driver, NVRTC, ordinal), so that a missing one is an error before any
/// data is fetched, not a panic in the middle of a run. Choosing again is
/// allowed only for the same device.
pub fn select(device: ComputeDevice) -> Result<(), TrainError> {
    if let Some(current) = SELECTED.get() {
        return if current.device == device {
            Ok(())
        } else {
            Err(TrainError::Device(format!(
                "this process already trains on {}; it cannot switch to {device}",
                current.device
            )))
        };
    }
    let entries = match device {
        ComputeDevice::Cpu => BTreeMap::new(),
        ComputeDevice::Cuda(ordinal) => probe_cuda(ordinal)?,
    };
    // A concurrent select of another device loses here and is caught by
    // the check above on its next call; the first choice stands.
    let _ = SELECTED.set(Selected { device, entries });
    Ok(())
}

/// The device this process trains on (the CPU unless [`select`] chose
/// another).
pub fn selected() -> ComputeDevice {
    SELECTED.get().map_or(ComputeDevice::Cpu, |s| s.device)
}

/// burn's device for the selected one, and the backend's name as the
/// fingerprint and the artifact record it.
pub(crate) fn burn_device() -> (Device, &'static str) {
    match selected() {
        ComputeDevice::Cpu => (Device::flex(), "flex"),
        #[cfg(feature = "cuda")]
        ComputeDevice::Cuda(ordinal) => (Device::cuda(ordinal), "cuda"),
        // `select` refuses CUDA in a build without it.
        #[cfg(not(feature = "cuda"))]
        ComputeDevice::Cuda(_) => (Device::flex(), "flex"),
    }
}

/// Fingerprint entries for the selected device: `device`, `deterministic`,
/// and on a GPU its name, compute capability, driver and CUDA versions.
///
/// `deterministic` is what this engine can vouch for. On the CPU, flex's
/// kernels are bit-repeatable whatever the thread count (the determinism
/// tests prove it on every CI run). On a GPU nothing proves it: cubecl
/// chooses kernels by timing them (autotune), and a kernel's reduction
/// order may depend on the device, so the entry is `false` there and a
/// comparison does not read identical trajectories as "not triggered".
pub(crate) fn fingerprint_entries() -> BTreeMap<String, String> {
    let mut f = SELECTED
        .get()
        .map(|s| s.entries.clone())
        .unwrap_or_default();
    f.insert("device".into(), selected().to_string());
    f.insert(
        "deterministic".into(),
        (selected() == ComputeDevice::Cpu).to_string(),
    );
    f
}

#[cfg(not(feature = "cuda"))]
fn probe_cuda(_ordinal: usize) -> Result<BTreeMap<String, String>, TrainError> {
    Err(TrainError::Device(
        "this build of reproml has no CUDA support; build it with \
         `cargo build --release --features cuda` (docs/training.md, \"The CUDA build\")"
            .into(),
    ))
}

#[cfg(feature = "cuda")]
fn probe_cuda(ordinal: usize) -> Result<BTreeMap<String, String>, TrainError> {
    crate::cuda::probe(ordinal)
}

/// `13000` → `13.0`, as CUDA writes the versions `cuDriverGetVersion`
/// returns. (Here rather than in the `cuda` module so that every build
/// tests it.)
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn cuda_version(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// The version in `/proc/driver/nvidia/version`'s first line: the first
/// word after "Kernel Module" made of digits and dots ("NVRM version:
/// NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build …").
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn kernel_module_version(text: &str) -> Option<String> {
    let line = text.lines().next()?;
    let after = line.split("Kernel Module").nth(1)?;
    after
        .split_whitespace()
        .find(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_back() {
        for (text, device) in [
            ("cpu", ComputeDevice::Cpu),
            ("cuda:0", ComputeDevice::Cuda(0)),
            ("cuda:7", ComputeDevice::Cuda(7)),
        ] {
            assert_eq!(text.parse::<ComputeDevice>(), Ok(device));
            assert_eq!(device.to_string(), text);
        }
        for bad in ["", "gpu", "cuda:", "cuda:-1", "cuda:x", "CPU", "cuda0"] {
            let err = bad.parse::<ComputeDevice>().unwrap_err();
            assert!(err.contains("cpu, cuda or cuda:N"), "{bad}: {err}");
        }
    }

    #[test]
    fn versions_read_as_nvidia_writes_them() {
        assert_eq!(cuda_version(13000), "13.0");
        assert_eq!(cuda_version(12080), "12.8");
        let proc = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  \
                    Tue Oct 28 2025\nGCC version:  gcc 13\n";
        assert_eq!(kernel_module_version(proc).as_deref(), Some("580.159.04"));
        // The open kernel module's wording, as an H200 machine had it.
        let open = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  \
                    Release Build  (dvs-builder@U22-I3-AM02-24-3)  Wed Oct 22 2025";
        assert_eq!(kernel_module_version(open).as_deref(), Some("580.159.04"));
        assert_eq!(kernel_module_version("nothing here"), None);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_build_without_cuda_refuses_it_and_says_how_to_build() {
        let err = select(ComputeDevice::Cuda(0)).unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
        assert_eq!(selected(), ComputeDevice::Cpu);
        assert_eq!(fingerprint_entries()["deterministic"], "true");
    }
}
