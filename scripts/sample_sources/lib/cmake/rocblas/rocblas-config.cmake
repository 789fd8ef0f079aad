# Sample CMake package for rocBLAS (wheelyard's sample artifacts).
include(CMakeFindDependencyMacro)
find_dependency(hip)
get_filename_component(_rocblas_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET roc::rocblas)
  add_library(roc::rocblas SHARED IMPORTED)
  set_target_properties(roc::rocblas PROPERTIES
    IMPORTED_LOCATION "${_rocblas_prefix}/lib/librocblas.so.5"
    IMPORTED_SONAME "librocblas.so.5"
    INTERFACE_INCLUDE_DIRECTORIES "${_rocblas_prefix}/include"
    INTERFACE_LINK_LIBRARIES hip::host)
endif()
set(rocblas_FOUND TRUE)
unset(_rocblas_prefix)
