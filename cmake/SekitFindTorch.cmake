# Finds libtorch for libsekit. SEKIT_LIBTORCH chooses which one:
#   system (default): -DTorch_DIR / -DLIBTORCH / $LIBTORCH when given, else a Python torch's
#       cmake prefix when SEKIT_PYTHON is set (CUDA builds usually come from a pip torch),
#       else Debian's libtorch-dev (/usr/lib/x86_64-linux-gnu/cmake/Torch);
#   pip: PyTorch's own CPU wheel, installed (once) into a virtual environment at
#       SEKIT_TORCH_VENV (default: <build dir>/../torch-venv) as torch==SEKIT_PIP_TORCH;
#   auto: system when one is found, else pip;
#   a directory: an unpacked libtorch (holding share/cmake/Torch) or a TorchConfig.cmake's.
# Sets SEKIT_TORCH_LIB_DIR (for rpath), SEKIT_TORCH_CXX_FLAGS and SEKIT_TORCH_VERSION.
set(SEKIT_PIP_TORCH "2.13.0+cpu" CACHE STRING "the PyTorch wheel SEKIT_LIBTORCH=pip installs")

# The wheel's TorchConfig.cmake directory, installing the wheel first if it is missing.
function(sekit_pip_torch out)
  if(NOT SEKIT_TORCH_VENV)
    get_filename_component(SEKIT_TORCH_VENV "${CMAKE_BINARY_DIR}/../torch-venv" ABSOLUTE)
  endif()
  set(py "${SEKIT_TORCH_VENV}/bin/python3")
  set(pattern "${SEKIT_TORCH_VENV}/lib/python3*/site-packages/torch/share/cmake/Torch/TorchConfig.cmake")
  file(GLOB cfg "${pattern}")
  if(NOT cfg)
    find_program(SEKIT_HOST_PYTHON NAMES python3)
    if(NOT SEKIT_HOST_PYTHON)
      message(FATAL_ERROR "SEKIT_LIBTORCH=pip needs python3 with venv and pip on the PATH to install torch==${SEKIT_PIP_TORCH}.")
    endif()
    message(STATUS "sekit: installing torch==${SEKIT_PIP_TORCH} (no dependencies: only its C++ library is used) into ${SEKIT_TORCH_VENV}")
    execute_process(COMMAND "${SEKIT_HOST_PYTHON}" -m venv "${SEKIT_TORCH_VENV}" RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "could not make a Python virtual environment at ${SEKIT_TORCH_VENV} for SEKIT_LIBTORCH=pip (python3 -m venv failed).")
    endif()
    # A wheel in pip's find-links first (no index asked), then pip's indexes.
    execute_process(COMMAND "${py}" -m pip install -q --no-deps --no-index "torch==${SEKIT_PIP_TORCH}" RESULT_VARIABLE rc
      OUTPUT_QUIET ERROR_QUIET)
    if(NOT rc EQUAL 0)
      execute_process(COMMAND "${py}" -m pip install -q --no-deps "torch==${SEKIT_PIP_TORCH}" RESULT_VARIABLE rc)
    endif()
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "pip could not install torch==${SEKIT_PIP_TORCH} into ${SEKIT_TORCH_VENV} for SEKIT_LIBTORCH=pip: make the wheel reachable to pip, or choose another libtorch.")
    endif()
    file(GLOB cfg "${pattern}")
  endif()
  list(LENGTH cfg found)
  if(NOT found EQUAL 1)
    message(FATAL_ERROR "SEKIT_LIBTORCH=pip: expected one torch in ${SEKIT_TORCH_VENV}, found ${found}: remove that directory to install it again.")
  endif()
  get_filename_component(dir "${cfg}" DIRECTORY)
  set(${out} "${dir}" PARENT_SCOPE)
endfunction()

function(sekit_find_torch)
  if(NOT SEKIT_LIBTORCH)
    set(SEKIT_LIBTORCH system)
  endif()
  set(choice "${SEKIT_LIBTORCH}")
  if(NOT choice MATCHES "^(system|pip|auto)$" AND NOT IS_DIRECTORY "${choice}")
    message(FATAL_ERROR "SEKIT_LIBTORCH is '${choice}': say system, pip, auto, or the directory of a libtorch.")
  endif()
  if(choice STREQUAL "system" OR choice STREQUAL "auto")
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
    if(NOT Torch_FOUND AND choice STREQUAL "auto")
      message(STATUS "sekit: no system libtorch; building against PyTorch's CPU wheel (SEKIT_LIBTORCH=pip)")
      set(choice pip)
    endif()
  elseif(NOT choice STREQUAL "pip")
    list(APPEND CMAKE_PREFIX_PATH "${choice}" "${choice}/share/cmake")
    find_package(Torch QUIET)
  endif()
  if(choice STREQUAL "pip")
    sekit_pip_torch(pip_dir)
    set(Torch_DIR "${pip_dir}")
    # The wheel's TorchConfig looks for Caffe2Config and its libraries with the system paths
    # first, where a Debian libtorch-dev would win: only the wheel's own are searched.
    get_filename_component(Caffe2_DIR "${pip_dir}/../Caffe2" ABSOLUTE)
    set(CMAKE_FIND_USE_CMAKE_SYSTEM_PATH FALSE)
    set(CMAKE_FIND_USE_SYSTEM_ENVIRONMENT_PATH FALSE)
    find_package(Torch QUIET)
  endif()
  if(NOT Torch_FOUND)
    message(FATAL_ERROR
      "libtorch was not found: install Debian's libtorch-dev (apt-get install -y libtorch-dev), "
      "or build with SEKIT_LIBTORCH=pip (PyTorch's CPU wheel), or point -DTorch_DIR / LIBTORCH at a libtorch, "
      "or set SEKIT_PYTHON to a python with torch.")
  endif()
  # TorchConfig sets TORCH_LIBRARY (libtorch.so) for every libtorch: its directory holds
  # the others, and goes into the rpath.
  get_filename_component(lib_dir "${TORCH_LIBRARY}" DIRECTORY)
  get_filename_component(lib_dir "${lib_dir}" REALPATH)
  separate_arguments(flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
    set(SEKIT_TORCH_HAS_CUDA ON PARENT_SCOPE)
  else()
    set(SEKIT_TORCH_HAS_CUDA OFF PARENT_SCOPE)
  endif()
  set(SEKIT_TORCH_LIB_DIR "${lib_dir}" PARENT_SCOPE)
  set(SEKIT_TORCH_CXX_FLAGS "${flags}" PARENT_SCOPE)
  set(SEKIT_TORCH_VERSION "${Torch_VERSION}" PARENT_SCOPE)
  set(TORCH_LIBRARIES "${TORCH_LIBRARIES}" PARENT_SCOPE)
  set(TORCH_INCLUDE_DIRS "${TORCH_INCLUDE_DIRS}" PARENT_SCOPE)
  message(STATUS "sekit: libtorch ${Torch_VERSION} from ${Torch_DIR} (libs in ${lib_dir})")
endfunction()
