"""A small U-Net: Ronneberger, Fischer & Brox 2015, "U-Net: convolutional networks for biomedical
image segmentation" (MICCAI), §2, kept to a few levels so that it fits small images.

As in the paper: at each level two 3×3 convolutions with ReLU, 2×2 max-pooling down, a 2×2
"up-convolution" (transposed convolution, stride 2) up that halves the channels, the encoder's
feature map of the same level concatenated to it (the skip connection), two 3×3 convolutions,
and a final 1×1 convolution to the output channels; the channels double per level down.
Changes: zero ("same") padding instead of valid convolutions with cropping, so the output has
the input's size; BatchNorm after each 3×3 convolution, as in the U-Net generator of pix2pix
(Isola et al. 2017, "Image-to-image translation with conditional adversarial networks", CVPR,
§3.2.1); the paper's width 64 and depth 4 become parameters.
"""

from __future__ import annotations

import torch
from torch import nn


def double_conv(cin: int, cout: int) -> nn.Sequential:
    """Two 3×3 convolutions, each followed by BatchNorm and ReLU: cin x s x s → cout x s x s."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
    )  # fmt: skip


class UNet(nn.Module):
    """in_channels x s x s → out_channels x s x s, with ``depth`` halvings (s divisible by 2^depth).

    With width w and depth 2: w x s x s → 2w x s/2 x s/2 → (bottleneck) 4w x s/4 x s/4, then
    back up through 2w x s/2 x s/2 and w x s x s. The output layer (``self.out``, a 1×1
    convolution) has no non-linearity: its values are signed.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int, depth: int = 2) -> None:
        super().__init__()
        widths = [width * 2**k for k in range(depth + 1)]  # w, 2w, ..., 2^depth·w
        self.down = nn.ModuleList([double_conv(in_channels, widths[0])])
        self.down.extend(double_conv(widths[k], widths[k + 1]) for k in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[k + 1], widths[k], 2, 2) for k in reversed(range(depth)))
        self.merge = nn.ModuleList(double_conv(2 * widths[k], widths[k]) for k in reversed(range(depth)))
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, block in enumerate(self.down):
            x = block(x if k == 0 else self.pool(x))  # 2^k·w x s/2^k x s/2^k
            skips.append(x)
        skips.pop()  # the bottleneck has no partner on the way up
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))  # one level up, same width as its skip
        return self.out(x)
