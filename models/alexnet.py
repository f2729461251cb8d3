"""alexnet: the full-size ImageNet network (Krizhevsky et al. 2012, single-tower variant as in
convnet-benchmarks) for 3x224x224 inputs. Needs a prepared ImageNet file (--data)."""
from minifft import nn

INPUT_SHAPE = (3, 224, 224)
DATASET = 'imagefolder'
EPOCHS = 90
BATCH_SIZE = 128
LR = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
SCHEDULE = 'step:30:0.1'
AUGMENT = True


def create_model(n_classes, conv=nn.SpatialConvolutionFFT):
    return nn.Sequential(
        conv(3, 64, 11, 11, 4, 4, 2, 2),       # 64 x 55 x 55
        nn.ReLU(),
        nn.SpatialMaxPooling(3, 3, 2, 2),      # 64 x 27 x 27
        conv(64, 192, 5, 5, 1, 1, 2, 2),       # 192 x 27 x 27
        nn.ReLU(),
        nn.SpatialMaxPooling(3, 3, 2, 2),      # 192 x 13 x 13
        conv(192, 384, 3, 3, 1, 1, 1, 1),      # 384 x 13 x 13
        nn.ReLU(),
        conv(384, 256, 3, 3, 1, 1, 1, 1),      # 256 x 13 x 13
        nn.ReLU(),
        conv(256, 256, 3, 3, 1, 1, 1, 1),      # 256 x 13 x 13
        nn.ReLU(),
        nn.SpatialMaxPooling(3, 3, 2, 2),      # 256 x 6 x 6
        nn.View(-1),                           # 9216
        nn.Dropout(0.5),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Linear(4096, n_classes),            # n_classes scores
    )
