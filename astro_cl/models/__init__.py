"""Encoders: trainable models (contrastive encoders and map regressors).

`TorchEncoder` is the base of models made of a torch network and a loss
(`~astro_cl.models.simclr.SimCLR`, `~astro_cl.models.regressor.CNNRegressor`,
`~astro_cl.models.clip.CLIPEncoder`, plugins' models); training settings are a
`~astro_cl.training.TrainerConfig`.
"""

from astro_cl.models.base import Encoder

__all__ = ["CLIPEncoder", "Encoder", "InputContract", "TorchEncoder", "load_model"]


def __getattr__(name):
    # lazy: these modules are light, but keep `import astro_cl.models` minimal
    if name == "load_model":
        from astro_cl.models.artefact import load_model

        return load_model
    if name == "TorchEncoder":
        from astro_cl.models.torch_encoder import TorchEncoder

        return TorchEncoder
    if name == "CLIPEncoder":
        from astro_cl.models.clip import CLIPEncoder

        return CLIPEncoder
    if name == "InputContract":
        from astro_cl.models.contract import InputContract

        return InputContract
    msg = f"module 'astro_cl.models' has no attribute {name!r}"
    raise AttributeError(msg)
