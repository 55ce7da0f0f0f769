# Finds libtorch for libsekit, in this order:
#   1. -DTorch_DIR=... or -DLIBTORCH=<unpacked libtorch> or $LIBTORCH
#   2. a Python torch's cmake prefix (python3 -c 'import torch.utils; ...'), when
#      SEKIT_PYTHON is set or found (CUDA builds usually come from a pip torch)
#   3. Debian's libtorch-dev (/usr/lib/x86_64-linux-gnu/cmake/Torch)
# Sets SEKIT_TORCH_LIB_DIR (for rpath) and SEKIT_TORCH_CXX_FLAGS.
function(sekit_find_torch)
  set(hints "")
  if(LIBTORCH)
    list(APPEND hints "${LIBTORCH}")
  elseif(DEFINED ENV{LIBTORCH})
    list(APPEND hints "$ENV{LIBTORCH}")
  endif()
  if(SEKIT_PYTHON)
    execute_process(
      COMMAND "${SEKIT_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE py_prefix OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
    if(rc EQUAL 0 AND py_prefix)
      list(APPEND hints "${py_prefix}")
    endif()
  endif()
  list(APPEND hints "/usr/lib/x86_64-linux-gnu/cmake" "/usr/lib/x86_64-linux-gnu/cmake/Torch")
  list(APPEND CMAKE_PREFIX_PATH ${hints})
  # TorchConfig probes CUDA when the libtorch has it; let it speak, but fail
  # in one sentence when libtorch is absent.
  find_package(Torch QUIET)
  if(NOT Torch_FOUND)
    message(FATAL_ERROR
      "libtorch was not found: install Debian's libtorch-dev (apt-get install -y libtorch-dev), "
      "or point -DTorch_DIR / LIBTORCH at a libtorch, or set SEKIT_PYTHON to a python with torch.")
  endif()
  # TorchConfig sets TORCH_LIBRARY (libtorch.so) for every libtorch: its directory holds
  # the others, and goes into the rpath.
  get_filename_component(lib_dir "${TORCH_LIBRARY}" DIRECTORY)
  separate_arguments(flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
    set(SEKIT_TORCH_HAS_CUDA ON PARENT_SCOPE)
  else()
    set(SEKIT_TORCH_HAS_CUDA OFF PARENT_SCOPE)
  endif()
  set(SEKIT_TORCH_LIB_DIR "${lib_dir}" PARENT_SCOPE)
  set(SEKIT_TORCH_CXX_FLAGS "${flags}" PARENT_SCOPE)
  set(TORCH_LIBRARIES "${TORCH_LIBRARIES}" PARENT_SCOPE)
  set(TORCH_INCLUDE_DIRS "${TORCH_INCLUDE_DIRS}" PARENT_SCOPE)
  message(STATUS "sekit: libtorch ${Torch_VERSION} from ${Torch_DIR} (libs in ${lib_dir})")
endfunction()
