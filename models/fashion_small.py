"""fashion_small: two 5x5 convolutions and a small classifier for 1x28x28 Fashion-MNIST."""
from minifft import nn

INPUT_SHAPE = (1, 28, 28)
DATASET = 'fashion_mnist'
EPOCHS = 12
BATCH_SIZE = 64
LR = 0.05
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
SCHEDULE = 'cosine'
AUGMENT = True  # random 2-pixel shifts and horizontal flips (clothes are left-right symmetric)
CROP_PAD = 2


def create_model(n_classes, conv=nn.SpatialConvolutionFFT):
    return nn.Sequential(
        conv(1, 32, 5, 5, 1, 1, 2, 2),         # 32 x 28 x 28
        nn.SpatialBatchNormalization(32),
        nn.ReLU(),
        nn.SpatialMaxPooling(2, 2, 2, 2),      # 32 x 14 x 14
        conv(32, 64, 5, 5, 1, 1, 2, 2),        # 64 x 14 x 14
        nn.SpatialBatchNormalization(64),
        nn.ReLU(),
        nn.SpatialMaxPooling(2, 2, 2, 2),      # 64 x 7 x 7
        nn.View(-1),                           # 3136
        nn.Linear(64 * 7 * 7, 256),            # 256
        nn.BatchNormalization(256),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(256, n_classes),             # n_classes scores
    )
