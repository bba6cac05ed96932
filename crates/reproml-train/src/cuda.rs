//! What the fingerprint records of a GPU, read through cudarc (the crate
//! burn's CUDA backend loads the driver with), and the checks that turn a
//! missing driver or NVRTC into an error rather than cudarc's panic.
//!
//! cudarc loads `libcuda` and `libnvrtc` on first use and panics when they
//! are missing; its safe API has no driver or NVRTC version. Hence the few
//! `unsafe` calls below, each with the argument for its soundness.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::c_int;

use cudarc::driver::result as driver;
use cudarc::driver::sys as driver_sys;
use cudarc::nvrtc::sys as nvrtc_sys;

use crate::TrainError;

/// The CUDA version this build's bindings are for (`CUDARC_CUDA_VERSION`
/// at build time, as cudarc read it; e.g. 13000).
fn built_for() -> c_int {
    option_env!("CUDARC_CUDA_VERSION")
        .and_then(|v| v.parse().ok())
        .unwrap_or(13000)
}

/// Probes GPU `ordinal`: the driver and NVRTC load, the device exists, and
/// its name, compute capability and versions, as fingerprint entries.
pub(crate) fn probe(ordinal: usize) -> Result<BTreeMap<String, String>, TrainError> {
    let fail = |what: String| TrainError::Device(what);
    // SAFETY: `is_culib_present` only tries to dlopen the candidate names
    // of the CUDA driver library and drops what it opened; loading the
    // NVIDIA driver's library runs no initialiser with preconditions.
    if !unsafe { driver_sys::is_culib_present() } {
        return Err(fail(
            "no NVIDIA driver found (libcuda.so): install the driver, or put its \
             folder on LD_LIBRARY_PATH; --device cpu trains on the CPU"
                .into(),
        ));
    }
    // SAFETY: as above, for the NVRTC library of the CUDA toolkit.
    if !unsafe { nvrtc_sys::is_culib_present() } {
        return Err(fail(
            "NVRTC (libnvrtc.so from the CUDA toolkit) was not found: burn's CUDA \
             backend compiles its kernels with it at run time; put the toolkit's \
             lib64 folder on LD_LIBRARY_PATH"
                .into(),
        ));
    }
    driver::init().map_err(|e| fail(format!("the CUDA driver did not start: {e}")))?;
    let count =
        driver::device::get_count().map_err(|e| fail(format!("cannot count the GPUs: {e}")))?;
    if ordinal >= usize::try_from(count).unwrap_or(0) {
        return Err(fail(format!(
            "there is no GPU cuda:{ordinal}: the driver sees {count}{}",
            if count > 0 {
                " (cuda:0 is the first)"
            } else {
                ""
            }
        )));
    }
    let device = driver::device::get(ordinal as c_int)
        .map_err(|e| fail(format!("cannot open GPU cuda:{ordinal}: {e}")))?;
    let mut f = BTreeMap::new();
    if let Ok(name) = driver::device::get_name(device) {
        f.insert("gpu".into(), name);
    }
    let attribute = |a| {
        // SAFETY: `device` came from `device::get` for an ordinal below the
        // device count, which is what `get_attribute` requires.
        unsafe { driver::device::get_attribute(device, a) }.ok()
    };
    if let (Some(major), Some(minor)) = (
        attribute(driver_sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
        attribute(driver_sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
    ) {
        f.insert("gpu_capability".into(), format!("{major}.{minor}"));
    }
    let built = built_for();
    let rebuild = "rebuild with CUDARC_CUDA_VERSION set to the machine's CUDA version \
                   (e.g. 12080 for 12.8; docs/training.md, \"The CUDA build\")";
    let mut version: c_int = 0;
    // SAFETY: the driver is initialised and loaded (checked above);
    // `cuDriverGetVersion` writes one int through a pointer to a live local.
    if unsafe { driver_sys::cuDriverGetVersion(&mut version) } == driver_sys::CUresult::CUDA_SUCCESS
    {
        // A newer API than the driver's would fail later, mid-run, on a
        // missing symbol.
        if version < built {
            return Err(fail(format!(
                "the NVIDIA driver offers CUDA {}, but this build needs CUDA {} or newer: \
                 update the driver, or {rebuild}",
                crate::device::cuda_version(version),
                crate::device::cuda_version(built)
            )));
        }
        f.insert("cuda".into(), crate::device::cuda_version(version));
    }
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: NVRTC is present (checked above); `nvrtcVersion` writes two
    // ints through pointers to live locals.
    if unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) }
        == nvrtc_sys::nvrtcResult::NVRTC_SUCCESS
    {
        // cudarc may load another major version's library (it tries
        // several names), while its functions are bound for this build's.
        if major != built / 1000 {
            return Err(fail(format!(
                "the NVRTC found is version {major}.{minor}, but this build is for CUDA {}: \
                 put that version's NVRTC first on LD_LIBRARY_PATH, or {rebuild}",
                crate::device::cuda_version(built)
            )));
        }
        f.insert("nvrtc".into(), format!("{major}.{minor}"));
    }
    // The kernel module's version (e.g. 580.159.04), which `nvidia-smi`
    // calls the driver version; the CUDA version above is the API's.
    if let Some(driver) = std::fs::read_to_string("/proc/driver/nvidia/version")
        .ok()
        .and_then(|text| crate::device::kernel_module_version(&text))
    {
        f.insert("driver".into(), driver);
    }
    Ok(f)
}
