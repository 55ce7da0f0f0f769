"""timm's own ese_vovnet19b_dw on CUDA, as the reference for dev.sekit.cuda.TimmCudaTest.

Run on the GPU machine (python3 with a CUDA torch and timm): writes OUT/timm_ese_vovnet19b_dw_cuda.safetensors
holding timm's state dict ("state." + its keys, float32), an input batch, and timm's results on
CUDA: logits and the four stage maps in float32 (TF32 off), and logits in float16 and
bfloat16 (the model and input cast, as sekit's to(CUDA, dtype) does), and float64 logits on
the CPU as the exact reference. The BatchNorm running statistics are randomised so that eval
mode does not reduce them to identities.
"""
import sys

import safetensors.torch
import timm
import torch


def main(out):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = timm.create_model("ese_vovnet19b_dw", pretrained=False).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.randn(2, 3, 224, 224)
    tensors = {"state." + k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    tensors["input"] = x
    with torch.no_grad():
        tensors["logits.f64"] = model.double()(x.double()).float()
        model.float()
        gpu = model.cuda()
        xg = x.cuda()
        tensors["logits.f32"] = gpu(xg).cpu()
        h = gpu.stem(xg)
        for i, stage in enumerate(gpu.stages):
            h = stage(h)
            tensors["feature.%d" % i] = h.cpu()
        for name, dtype in (("f16", torch.float16), ("bf16", torch.bfloat16)):
            gpu.float().load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("state.")})
            tensors["logits." + name] = gpu.to(dtype)(xg.to(dtype)).float().cpu()
    path = out + "/timm_ese_vovnet19b_dw_cuda.safetensors"
    safetensors.torch.save_file(tensors, path, metadata={"timm": timm.__version__, "torch": torch.__version__,
                                                         "device": torch.cuda.get_device_name(0)})
    ref = tensors["logits.f64"]
    for k in ("logits.f32", "logits.f16", "logits.bf16"):
        err = ((tensors[k] - ref).norm() / ref.norm()).item()
        print("timm %s on CUDA vs float64 CPU: relative error %.3g" % (k, err))
    print("wrote", path)


if __name__ == "__main__":
    main(sys.argv[1])
