"""The estimator-style contract shared by every astro_cl component.

Components follow scikit-learn's conventions: ``__init__`` takes keyword-only
configuration and only stores it, ``fit`` returns ``self``, learned attributes
end in an underscore, and `Component.get_params` / `Component.set_params`
expose the configuration.
"""

import copy
import inspect
from typing import Any, ClassVar, Self, TypeVar

__all__ = ["Component", "clone"]

_C = TypeVar("_C", bound="Component")


class Component:
    """Base class of surveys, augmenters, encoders and downstream tasks.

    Subclasses declare a unique registry ``name`` and a one-line ``description``
    as class attributes, and store each ``__init__`` argument under an attribute
    of the same name.
    """

    #: Unique name under which the component is registered (e.g. ``"ecalifa"``).
    name: ClassVar[str] = ""
    #: One-line description shown by ``astro-cl plugins``.
    description: ClassVar[str] = ""

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Return the configuration of this component.

        Parameters
        ----------
        deep : bool, optional
            If True, also return the parameters of nested components as
            ``"<name>__<param>"`` keys.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        params: dict[str, Any] = {}
        for key in self._param_names():
            value = getattr(self, key)
            if deep and isinstance(value, Component):
                params.update({f"{key}__{k}": v for k, v in value.get_params().items()})
            params[key] = value
        return params

    def set_params(self, **params: Any) -> Self:
        """Set configuration parameters.

        Parameters
        ----------
        **params : dict
            Parameter names and new values; ``"<name>__<param>"`` sets a
            parameter of a nested component.

        Returns
        -------
        self : `Component`
            This component.

        Raises
        ------
        ValueError
            If a name is not a parameter of this component.
        """
        valid = set(self._param_names())
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            head, sep, tail = key.partition("__")
            if head not in valid:
                msg = (
                    f"{head!r} is not a parameter of {type(self).__name__}; "
                    f"valid parameters are {sorted(valid)}"
                )
                raise ValueError(msg)
            if sep:
                nested.setdefault(head, {})[tail] = value
            else:
                setattr(self, key, value)
        for head, sub in nested.items():
            getattr(self, head).set_params(**sub)
        self._reset_derived()
        return self

    def _reset_derived(self) -> None:
        """Drop state derived from the parameters (caches); called by `set_params`.

        Subclasses that cache anything computed from their parameters (an
        opened catalogue, a built network) clear it here, in this one place.
        """

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({args})"


def clone(component: _C) -> _C:
    """Return an unfitted copy of a component with the same configuration.

    Parameters
    ----------
    component : `Component`
        The component to copy.

    Returns
    -------
    new : `Component`
        A new instance built from ``component.get_params(deep=False)``.
    """
    params = {k: copy.deepcopy(v) for k, v in component.get_params(deep=False).items()}
    return type(component)(**params)
