"""Evaluation: the protocol (PSNR/SSIM on Y, border shaved), metrics, perceptual metrics, the report."""
