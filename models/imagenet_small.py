"""imagenet_small: an ImageNet-style network for 3x64x64 inputs whose early layers use the large
kernels (9x9, 7x7, 5x5) where FFT convolution pays. Default data: the embedded synthetic set
(scripts/prepare_data.py synthetic); train on real ImageNet with --data (see README)."""
from minifft import nn

INPUT_SHAPE = (3, 64, 64)
DATASET = 'synthetic'
EPOCHS = 2
BATCH_SIZE = 64
LR = 0.05
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
SCHEDULE = 'cosine'
AUGMENT = False


def create_model(n_classes, conv=nn.SpatialConvolutionFFT):
    def block(f_in, f_out, k):
        return [conv(f_in, f_out, k, k, 1, 1, k // 2, k // 2), nn.SpatialBatchNormalization(f_out),
                nn.ReLU()]

    return nn.Sequential(
        *block(3, 32, 9),                      # 32 x 64 x 64
        nn.SpatialMaxPooling(2, 2, 2, 2),      # 32 x 32 x 32
        *block(32, 64, 7),                     # 64 x 32 x 32
        nn.SpatialMaxPooling(2, 2, 2, 2),      # 64 x 16 x 16
        *block(64, 96, 5),                     # 96 x 16 x 16
        nn.SpatialMaxPooling(2, 2, 2, 2),      # 96 x 8 x 8
        *block(96, 128, 3),                    # 128 x 8 x 8
        nn.SpatialAveragePooling(8, 8),        # 128 x 1 x 1
        nn.View(-1),                           # 128
        nn.Linear(128, n_classes),             # n_classes scores
    )
