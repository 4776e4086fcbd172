"""The S5 strong-view colour transforms: ColorJitter, grayscale and Gaussian blur (torch RNG).

S4P (docs/method.md): ColorJitter(0.5, 0.5, 0.5, 0.25) p=0.8, RandomGrayscale p=0.2, blur p=0.5 with
sigma ~ U(0.1, 2.0). They change ``"image"`` only; images with other than 3 bands get brightness and
contrast only (saturation, hue and grayscale are defined for RGB).
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms.v2 import functional as TF

from s5cli.datasets.base import Sample
from s5cli.datasets.draws import rand, uniform


class ColorJitter:
    """torchvision's ColorJitter drawn from torch's RNG; bands other than RGB get brightness and contrast only."""

    def __init__(
        self, brightness: float = 0.5, contrast: float = 0.5, saturation: float = 0.5, hue: float = 0.25
    ) -> None:
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __call__(self, sample: Sample) -> Sample:
        """The transformed sample (the input dict is not modified)."""
        image = sample["image"]
        rgb = image.shape[0] == 3
        factors = [
            uniform(1 - self.brightness, 1 + self.brightness),
            uniform(1 - self.contrast, 1 + self.contrast),
            uniform(1 - self.saturation, 1 + self.saturation),
            uniform(-self.hue, self.hue),
        ]
        for op in torch.randperm(4).tolist():
            if op == 0:
                image = (image * factors[0]).clamp(0, 1)
            elif op == 1:
                mean = TF.rgb_to_grayscale(image).mean() if rgb else image.mean()
                image = (factors[1] * image + (1 - factors[1]) * mean).clamp(0, 1)
            elif op == 2 and rgb:
                image = TF.adjust_saturation(image, factors[2])
            elif op == 3 and rgb:
                image = TF.adjust_hue(image, factors[3])
        return {**sample, "image": image}


class RandomGrayscale:
    """Replace an RGB image by its luminance in all three channels with probability p."""

    def __init__(self, p: float = 0.2) -> None:
        self.p = p

    def __call__(self, sample: Sample) -> Sample:
        """The transformed sample (the input dict is not modified)."""
        if rand() >= self.p or sample["image"].shape[0] != 3:
            return sample
        return {**sample, "image": TF.rgb_to_grayscale(sample["image"], num_output_channels=3)}


class RandomBlur:
    """Gaussian blur with probability p and sigma ~ U(sigma_min, sigma_max) (S5: PIL radius 0.1-2.0)."""

    def __init__(self, p: float = 0.5, sigma: tuple[float, float] = (0.1, 2.0)) -> None:
        self.p, self.sigma = p, sigma

    def __call__(self, sample: Sample) -> Sample:
        """The transformed sample (the input dict is not modified)."""
        if rand() >= self.p:
            return sample
        s = uniform(*self.sigma)
        image = sample["image"]
        k = min(2 * math.ceil(3 * s) + 1, 2 * ((min(image.shape[-2:]) - 1) // 2) + 1)  # odd, within the image
        if k < 3:
            return sample
        return {**sample, "image": TF.gaussian_blur(image, [k, k], [s, s])}
