"""Names code migrating from the official SDK imports keep working."""

from avtomatika_worker import InvalidInputError
from avtomatika_worker import types as official_names
from avtomatika_worker import typing as ours


def test_official_types_module_gives_the_same_error_codes_and_param_error() -> None:
    for name in official_names.__all__:
        if name.endswith("_ERROR"):
            assert getattr(official_names, name) == getattr(ours, name) == name
    assert official_names.ParamValidationError is InvalidInputError
