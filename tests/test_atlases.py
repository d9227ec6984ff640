"""Offline atlases: labels at known MNI coordinates, unknown names, coordinate atlases."""
import numpy as np
import pytest

from glmflow.core.atlases import (
    AtlasError,
    coordinate_atlas,
    label_coordinates,
    volume_atlas,
)

# MNI coordinates of textbook structures and the label each atlas gives them
POINTS = [(-24, -4, -18), (-40, -20, 55), (40, -20, 55), (0, 0, 200), (-8, -90, 0)]


def test_aal_labels_known_structures():
    atlas = volume_atlas("aal")
    assert atlas.image.shape == (75, 92, 75)
    assert label_coordinates(atlas, POINTS) == [
        "Amygdala_L", "Precentral_L", "Precentral_R", "n/a", "Calcarine_L"]
    assert "GNU General Public License" in atlas.licence


def test_harvard_oxford_maximum_probability_labels():
    atlas = volume_atlas("harvard_oxford")
    assert atlas.image.ndim == 3
    assert label_coordinates(atlas, POINTS) == [
        "Left_Amygdala", "Left_Precentral_Gyrus", "Right_Precentral_Gyrus", "n/a",
        "Left_Intracalcarine_Cortex"]
    values = np.unique(np.asanyarray(atlas.image.dataobj))
    assert values[0] == 0 and set(values[1:]) <= set(atlas.labels)


def test_unknown_atlas_names_a_close_match():
    with pytest.raises(AtlasError, match=r"^atlas: unknown volume atlas 'harvard-oxford'; "
                                         r"did you mean 'harvard_oxford'\? choose one of "):
        volume_atlas("harvard-oxford")
    with pytest.raises(AtlasError, match=r"did you mean 'power_2011'"):
        coordinate_atlas("power2011")


@pytest.mark.parametrize("name, n, networks", [
    ("power_2011", 264, False), ("dosenbach_2010", 160, True), ("seitzman_2018", 300, True)])
def test_coordinate_atlases_offline(name, n, networks):
    atlas = coordinate_atlas(name)
    assert atlas.coords.shape == (n, 3) and len(atlas.labels) == n
    assert (atlas.networks is not None) == networks
    assert np.all(np.abs(atlas.coords) < 120)
