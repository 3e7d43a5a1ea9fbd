"""The two-tower network of `~astro_cl.models.clip.CLIPEncoder` (imports torch).

One tower per modality, each a backbone with masked global pooling and a
dense head (`~astro_cl.models.backbones.ContrastiveNet`) followed by a linear
projection into the space the two modalities share, and one learnable logit
scale (the inverse temperature of the CLIP loss), as in CLIP (Radford et al.
2021) and AstroCLIP (Parker et al. 2024).
"""

import math

import torch
from torch import nn

__all__ = ["MODALITIES", "TwoTowerNet"]

#: The modalities of the two towers, in the order of `TwoTowerNet.forward`'s inputs.
MODALITIES = ("image", "cube")


class TwoTowerNet(nn.Module):
    """Image and cube towers projecting into one space, and a logit scale.

    Parameters
    ----------
    image_tower, cube_tower : `~astro_cl.models.backbones.ContrastiveNet`
        Each maps ``(x, mask)`` to ``(B, D)`` vectors of the shared space
        (with ``project=True``); both must give the same ``D``.
    temperature : float, optional
        Initial softmax temperature (CLIP: 0.07); the network holds
        ``log(1 / temperature)``.
    learn_temperature : bool, optional
        Train the logit scale with the towers (CLIP does).
    max_logit_scale : float, optional
        The scale is clamped to at most this (CLIP: 100) for stability.
    """

    def __init__(self, image_tower, cube_tower, *, temperature=0.07, learn_temperature=True,
                 max_logit_scale=100.0):
        super().__init__()
        self.image = image_tower
        self.cube = cube_tower
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / float(temperature))),
                                            requires_grad=bool(learn_temperature))
        self.max_logit_scale = float(max_logit_scale)

    @property
    def min_input_size(self):
        """int: smallest height and width (px) both towers can take."""
        return max(self.image.min_input_size, self.cube.min_input_size)

    def tower(self, modality):
        """Return the tower of a modality.

        Parameters
        ----------
        modality : {"image", "cube"}

        Returns
        -------
        tower : `~astro_cl.models.backbones.ContrastiveNet`
        """
        if modality not in MODALITIES:
            msg = f"modality: expected one of {MODALITIES}, got {modality!r}"
            raise ValueError(msg)
        return self.image if modality == "image" else self.cube

    def logit_scale(self):
        """Return the logit scale ``exp(log_logit_scale)``, clamped to ``max_logit_scale``.

        Returns
        -------
        scale : `torch.Tensor`
            Scalar.
        """
        return self.log_logit_scale.exp().clamp(max=self.max_logit_scale)

    def forward(self, image, image_mask, cube, cube_mask):
        """Return the shared-space vectors of paired inputs, and the logit scale.

        Parameters
        ----------
        image, cube : `torch.Tensor`
            ``(B, C, H, W)`` inputs of the two modalities (their own ``C``,
            ``H`` and ``W``); row ``i`` of both is galaxy ``i``.
        image_mask, cube_mask : `torch.Tensor` of bool or None
            True where bad.

        Returns
        -------
        z_image, z_cube : `torch.Tensor`
            ``(B, D)`` (not normalised).
        logit_scale : `torch.Tensor`
            Scalar.
        """
        return (self.image(image, image_mask, project=True),
                self.cube(cube, cube_mask, project=True), self.logit_scale())
