"""Geodesy: the ENU frame every stage works in must be exact enough for metre-level avoidance."""

import math

import numpy as np
import pytest

from agridrone.geo import LocalFrame, bearing_deg, distance_m, ecef_to_geodetic, geodetic_to_ecef, offset_deg


def test_ecef_round_trip_is_sub_millimetre():
    lat, lon, alt = np.array([-35.363261, 47.3981, 0.0, 89.9]), np.array([149.16523, 8.5402, 0.0, -179.9]), \
        np.array([584.0, 420.0, 0.0, 10.0])
    back = ecef_to_geodetic(*geodetic_to_ecef(lat, lon, alt))
    np.testing.assert_allclose(back[0], lat, atol=1e-9)
    np.testing.assert_allclose(back[1], lon, atol=1e-9)
    np.testing.assert_allclose(back[2], alt, atol=1e-3)


def test_enu_axes_point_the_right_way():
    f = LocalFrame(47.0, 8.0, 0.0)
    lat_n, lon_n = offset_deg(47.0, 8.0, north_m=100.0, east_m=0.0)
    assert lat_n > 47.0 and lon_n == pytest.approx(8.0, abs=1e-9)
    e, n, _ = f.to_enu(lat_n, lon_n)
    assert e == pytest.approx(0.0, abs=1e-6) and n == pytest.approx(100.0, abs=1e-6)
    lat_e, lon_e = offset_deg(47.0, 8.0, north_m=0.0, east_m=100.0)
    assert lon_e > 8.0


def test_enu_round_trip_vectorised():
    f = LocalFrame(-35.363261, 149.16523, 584.0)
    east = np.linspace(-2000, 2000, 11)
    north = np.linspace(1500, -1500, 11)
    lat, lon, alt = f.to_geo(east, north, 0.0)
    e2, n2, u2 = f.to_enu(lat, lon, alt)
    np.testing.assert_allclose(e2, east, atol=1e-6)
    np.testing.assert_allclose(n2, north, atol=1e-6)


def test_distance_and_bearing_agree_with_enu():
    f = LocalFrame(52.0, 5.0)
    lat, lon, _ = f.to_geo(300.0, 400.0)
    assert distance_m(52.0, 5.0, lat, lon) == pytest.approx(500.0, rel=5e-3)
    assert bearing_deg(52.0, 5.0, lat, lon) == pytest.approx(math.degrees(math.atan2(300, 400)), abs=0.2)  # sphere vs ellipsoid


def test_bad_origin_is_refused_with_what_was_expected():
    with pytest.raises(ValueError, match="expected lat -90..90"):
        LocalFrame(149.0, -35.0)
