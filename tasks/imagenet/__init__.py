"""ImageNet CNNs (ResNet-18/50, VGG-16, GoogLeNet, AlexNet, SqueezeNet) on an ImageFolder tree,
with a digits stand-in built on the fly. See ``tasks/imagenet/README.md``."""
