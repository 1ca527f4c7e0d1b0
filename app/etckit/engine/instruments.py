"""Instrument, telescope and background parameters, read from ``data/instruments.json``.

Every number lives in that one file next to the page or paper it comes from; this module only
reads it and offers small typed views of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=1)
def raw() -> dict[str, Any]:
    """The parsed data file (cached; treat as read-only)."""
    text = resources.files("etckit.engine").joinpath("data/instruments.json").read_text("utf-8")
    return json.loads(text)


def _v(entry: Any) -> Any:
    """A ``{"value": x, "source": s}`` entry's value (plain values pass through)."""
    return entry["value"] if isinstance(entry, dict) and "value" in entry else entry


@dataclass(frozen=True)
class Filter:
    name: str
    pivot_um: float
    bandwidth_um: float
    pce: float


@dataclass(frozen=True)
class Pattern:
    name: str
    nframe: int
    nskip: int
    max_groups: int
    frame_time_factor: float = 1.0
    read_noise_factor: float = 1.0
    extra_reset: bool = False


@dataclass(frozen=True)
class DroppedGroups:
    """Groups the calibration pipeline leaves out of each ramp's slope fit."""

    first: int = 0
    first_if_more_than: int = 0  # ... only when the ramp has more groups than this
    last: int = 0
    last_if_more_than: int = 0


@dataclass(frozen=True)
class DetectorMode:
    """What imaging and spectroscopic modes share: the detector figures that
    ``detector.make_exposure`` reads."""

    instrument: str
    name: str
    label: str
    pixel_scale_arcsec: float
    read_noise_e: float
    dark_current_e_s: float
    gain_e_adu: float
    full_well_e: float
    frame_time_s: float
    readout_family: str


@dataclass(frozen=True)
class Mode(DetectorMode):
    default_aperture: tuple[float | None, float | None, float | None]
    filters: dict[str, Filter]
    scatter_fraction: float = 0.0
    scatter_fwhm_arcsec: float = 1.0
    charge_diffusion_arcsec: float = 0.0
    cruciform: tuple[tuple[float, float], ...] = ()  # (wavelength um, fraction of the light)
    cruciform_scale_arcsec: float = 1.0
    dropped_groups: DroppedGroups = DroppedGroups()
    measured_fwhm_arcsec: tuple[tuple[str, float], ...] = ()  # (filter, in-flight PSF FWHM)


@dataclass(frozen=True)
class Telescope:
    area_cm2: float
    diameter_m: float
    obscuration: float
    segment_m: float
    wfe_nm: float
    jitter_arcsec: float = 0.0


@dataclass(frozen=True)
class BackgroundModel:
    scattered_at_1um: float
    scattered_temp_k: float
    thermal_at_12um: float
    thermal_temp_k: float
    observatory_thermal: tuple[tuple[float, float], ...]
    stray_light: tuple[tuple[float, float], ...]
    zodi_benchmark: tuple[tuple[float, float], ...] = ()  # >= ~5 um: tabulated zodi + stray


@lru_cache(maxsize=1)
def telescope() -> Telescope:
    t = raw()["telescope"]
    return Telescope(
        area_cm2=_v(t["collecting_area_m2"]) * 1e4,
        diameter_m=_v(t["diameter_m"]),
        obscuration=_v(t["obscuration_ratio"]),
        segment_m=_v(t["segment_size_m"]),
        wfe_nm=_v(t["wavefront_error_nm"]),
        jitter_arcsec=_v(t.get("pointing_jitter_arcsec", 0.0)),
    )


@lru_cache(maxsize=1)
def background_model() -> BackgroundModel:
    b = raw()["background"]
    return BackgroundModel(
        scattered_at_1um=_v(b["zodi_scattered_MJy_sr_at_1um"]),
        scattered_temp_k=_v(b["zodi_scattered_temperature_K"]),
        thermal_at_12um=_v(b["zodi_thermal_MJy_sr_at_12um"]),
        thermal_temp_k=_v(b["zodi_thermal_temperature_K"]),
        observatory_thermal=tuple(
            (float(w), float(v)) for w, v in _v(b["observatory_thermal_MJy_sr"])
        ),
        stray_light=tuple((float(w), float(v)) for w, v in _v(b["stray_light_MJy_sr"])),
        zodi_benchmark=tuple((float(w), float(v))
                             for w, v in _v(b.get("zodi_benchmark_MJy_sr", {"value": []}))),
    )


def instruments() -> list[str]:
    return list(raw()["instruments"])


def is_spectroscopic(instrument: str, mode_name: str) -> bool:
    """True for a spectroscopic mode (slit, disperser), False for imaging."""
    return raw()["instruments"][instrument]["modes"][mode_name].get("kind") == "spectroscopy"


def modes(instrument: str) -> list[str]:
    return list(raw()["instruments"][instrument]["modes"])


@cache
def mode(instrument: str, name: str) -> Mode:
    m = raw()["instruments"][instrument]["modes"][name]
    filters = {
        k: Filter(k, float(f["pivot_um"]), float(f["bandwidth_um"]), float(f["pce"]))
        for k, f in m["filters"].items()
    }
    return Mode(
        instrument=instrument,
        name=name,
        label=m["label"],
        pixel_scale_arcsec=_v(m["pixel_scale_arcsec"]),
        read_noise_e=_v(m["read_noise_e_per_frame"]),
        dark_current_e_s=_v(m["dark_current_e_per_s"]),
        gain_e_adu=_v(m["gain_e_per_adu"]),
        full_well_e=_v(m["full_well_e"]),
        frame_time_s=_v(m["frame_time_s"]),
        readout_family=m["readout_family"],
        default_aperture=(
            m["aperture_radius_arcsec"],
            m["annulus_inner_arcsec"],
            m["annulus_outer_arcsec"],
        ),
        filters=filters,
        scatter_fraction=float(m.get("detector_scatter", {}).get("fraction", 0.0)),
        scatter_fwhm_arcsec=float(m.get("detector_scatter", {}).get("fwhm_arcsec", 1.0)),
        charge_diffusion_arcsec=float(_v(m.get("charge_diffusion_sigma_arcsec", 0.0))),
        cruciform=tuple(
            (float(w), float(f))
            for w, f in m.get("cruciform", {}).get("fraction_vs_wavelength", [])
        ),
        cruciform_scale_arcsec=float(m.get("cruciform", {}).get("scale_arcsec", 1.0)),
        dropped_groups=_dropped(m.get("dropped_groups")),
        measured_fwhm_arcsec=tuple(
            (k, float(v)) for k, v in _v(m.get("measured_psf_fwhm_arcsec", {"value": {}})).items()
        ),
    )


def _dropped(d: dict | None) -> DroppedGroups:
    if not d:
        return DroppedGroups()
    return DroppedGroups(int(d["first"]), int(d["first_if_more_than"]), int(d["last"]),
                         int(d["last_if_more_than"]))


def patterns(family: str) -> dict[str, Pattern]:
    table = raw()["readout_patterns"][family]
    return {
        k: Pattern(
            name=k,
            nframe=int(p["nframe"]),
            nskip=int(p["nskip"]),
            max_groups=int(p["max_groups"]),
            frame_time_factor=float(p.get("frame_time_factor", 1.0)),
            read_noise_factor=float(p.get("read_noise_factor", 1.0)),
            extra_reset=bool(p.get("extra_reset", False)),
        )
        for k, p in table.items()
        if not k.startswith("_")
    }


def find_filter(name: str) -> tuple[str, str] | None:
    """(instrument, mode) that offers filter ``name``, or None."""
    for inst, idata in raw()["instruments"].items():
        for mname, mdata in idata["modes"].items():
            if name in mdata.get("filters", {}):
                return inst, mname
    return None


# --------------------------------------------------------------------------- spectroscopy


@dataclass(frozen=True)
class Configuration:
    """A disperser/filter pair of a spectroscopic mode; curves as (wavelength um, value)."""

    name: str  # "G140M/F100LP", or the disperser alone ("P750L")
    disperser: str
    filter: str | None
    range_um: tuple[float, float]
    dispersion: tuple[tuple[float, float], ...]  # um per pixel
    pce: tuple[tuple[float, float], ...]  # total system PCE, no slit loss


@dataclass(frozen=True)
class SpecMode(DetectorMode):
    """A slit spectroscopy mode: the detector figures (``DetectorMode``), the slit and the
    disperser/filter pairs."""

    slit_name: str
    slit_width_arcsec: float
    slit_length_arcsec: float
    resolution_element_pixels: float
    default_aperture: tuple[float, float, float]
    configurations: dict[str, Configuration]
    dropped_groups: DroppedGroups = DroppedGroups()


def _pairs(v: Any) -> tuple[tuple[float, float], ...]:
    return tuple((float(w), float(x)) for w, x in v)


@cache
def spec_mode(instrument: str, name: str) -> SpecMode:
    m = raw()["instruments"][instrument]["modes"][name]
    configs = {
        k: Configuration(k, c["disperser"], c["filter"], (float(c["range_um"][0]),
                                                         float(c["range_um"][1])),
                         _pairs(c["dispersion_um_per_pixel"]), _pairs(c["pce"]))
        for k, c in m["configurations"].items()
    }
    slit = m["slit"]
    return SpecMode(
        instrument=instrument, name=name, label=m["label"],
        pixel_scale_arcsec=_v(m["pixel_scale_arcsec"]),
        read_noise_e=_v(m["read_noise_e_per_frame"]),
        dark_current_e_s=_v(m["dark_current_e_per_s"]),
        gain_e_adu=_v(m["gain_e_per_adu"]),
        full_well_e=_v(m["full_well_e"]),
        frame_time_s=_v(m["frame_time_s"]),
        readout_family=m["readout_family"],
        slit_name=slit["name"], slit_width_arcsec=float(slit["width_arcsec"]),
        slit_length_arcsec=float(slit["length_arcsec"]),
        resolution_element_pixels=float(_v(m["resolution_element_pixels"])),
        default_aperture=(float(m["aperture_radius_arcsec"]), float(m["annulus_inner_arcsec"]),
                          float(m["annulus_outer_arcsec"])),
        configurations=configs,
        dropped_groups=_dropped(m.get("dropped_groups")),
    )
