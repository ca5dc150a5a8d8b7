# Lays out Triton's Python client as its wheel would: the vendored package
# copied to OUT/tritonclient, and the gRPC stubs generated from protobuf/
# beside tritonclient/grpc's own modules, under the names it imports, with
# protoc's top-level imports rewritten into the package (as upstream's
# build_wheel.py does).
#   cmake -DSOURCE=<this folder> -DOUT=<dir> -DPROTOC=<protoc>
#         -DPLUGIN=<grpc_python_plugin> -P make_package.cmake
foreach(variable SOURCE OUT PROTOC PLUGIN)
  if(NOT ${variable})
    message(FATAL_ERROR "make_package.cmake needs -D${variable}=...")
  endif()
endforeach()

file(REMOVE_RECURSE "${OUT}/tritonclient" "${OUT}/protoc")
file(MAKE_DIRECTORY "${OUT}/protoc")
file(COPY "${SOURCE}/tritonclient" DESTINATION "${OUT}")

execute_process(
  COMMAND "${PROTOC}" -I "${SOURCE}/protobuf" --python_out=${OUT}/protoc
          --grpc_out=${OUT}/protoc --plugin=protoc-gen-grpc=${PLUGIN}
          grpc_service.proto model_config.proto
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "protoc failed on ${SOURCE}/protobuf: ${result}")
endif()

set(grpc "${OUT}/tritonclient/grpc")
file(READ "${OUT}/protoc/model_config_pb2.py" text)
file(WRITE "${grpc}/model_config_pb2.py" "${text}")
file(READ "${OUT}/protoc/grpc_service_pb2.py" text)
string(REGEX REPLACE "\nimport model_config_pb2 as " "\nfrom tritonclient.grpc import model_config_pb2 as "
       text "${text}")
file(WRITE "${grpc}/service_pb2.py" "${text}")
file(READ "${OUT}/protoc/grpc_service_pb2_grpc.py" text)
string(REGEX REPLACE "\nimport grpc_service_pb2 as " "\nfrom tritonclient.grpc import service_pb2 as "
       text "${text}")
file(WRITE "${grpc}/service_pb2_grpc.py" "${text}")

# No top-level import may be left: it would find nothing, or the wrong module.
foreach(module service_pb2 service_pb2_grpc)
  file(STRINGS "${grpc}/${module}.py" left REGEX "^import [a-z_]+_pb2 ")
  if(left)
    message(FATAL_ERROR "${module}.py still imports outside the package: ${left}")
  endif()
endforeach()
file(REMOVE_RECURSE "${OUT}/protoc")
