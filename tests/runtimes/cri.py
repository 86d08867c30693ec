#!/usr/bin/env python3
"""Drives containerd's CRI (v1) as kubelet would, for tests/tests/runtime_containerd.rs.

    cri.py image OUT.tar ROOTFS_DIR REF          build a docker-archive image of a rootfs
    cri.py run SOCKET REF HOST_PORT CGROUP_PARENT two pods, a server and a client, then teardown
    cri.py pod SOCKET REF NAME CGROUP_PARENT [HOST_PORT] [KEY=VALUE...]
                                                 one pod (annotations KEY=VALUE) running an
                                                 httpd on port 80; prints its ids and IP
    cri.py exec SOCKET CONTAINER CMD...          runs CMD in the container; prints exit, stdout
    cri.py remove SOCKET POD                     stop and remove a pod, as kubelet does

`run` must run inside the sandbox host's netns (it connects to the published port). It
prints one JSON object with what it saw; the Rust test asserts on it. Stubs come from PyPI's
container-runtime-interface-api (tests/runtimes/setup-python.sh installs it).
"""

import hashlib
import io
import json
import socket
import sys
import tarfile
import time
import uuid


def build_image(out, rootfs, ref):
    """A docker-archive (`docker save` format) with one layer, runnable by `ctr import`."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        t.add(rootfs, arcname=".")
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sleep", "1000000"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "cni-rs tests"}],
    }
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": ["layer/layer.tar"]}]
    with tarfile.open(out, mode="w") as t:
        for name, data in [
            ("layer/layer.tar", layer_bytes),
            (config_name, config_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def fetch(host, port, timeout=3.0):
    """One HTTP/1.0 GET; the body, or the error."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
    except OSError as e:
        return f"error: {e}"


def run(sock, ref, host_port, cgroup_parent):
    import grpc
    from cri_api.v1 import api_pb2 as api
    from cri_api.v1 import api_pb2_grpc as rpc

    channel = grpc.insecure_channel("unix://" + sock)
    rt = rpc.RuntimeServiceStub(channel)
    deadline = time.time() + 20
    while True:
        try:
            version = rt.Version(api.VersionRequest(), timeout=2)
            break
        except grpc.RpcError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    out = {"runtime": f"{version.runtime_name} {version.runtime_version}"}

    def pod_config(name, ports):
        return api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=name, namespace="default", uid=str(uuid.uuid4())),
            hostname=name,
            log_directory="",
            port_mappings=[
                api.PortMapping(protocol=api.TCP, container_port=c, host_port=h) for c, h in ports
            ],
            linux=api.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent),
        )

    def container(pod_id, pod_cfg, name, command):
        cfg = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=name),
            image=api.ImageSpec(image=ref),
            command=command,
            linux=api.LinuxContainerConfig(),
        )
        cid = rt.CreateContainer(
            api.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg)
        ).container_id
        rt.StartContainer(api.StartContainerRequest(container_id=cid))
        return cid

    server_cfg = pod_config("server", [(80, host_port)])
    client_cfg = pod_config("client", [])
    server = rt.RunPodSandbox(api.RunPodSandboxRequest(config=server_cfg)).pod_sandbox_id
    client = rt.RunPodSandbox(api.RunPodSandboxRequest(config=client_cfg)).pod_sandbox_id
    ips = {}
    for name, pod in [("server", server), ("client", client)]:
        status = rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod)).status
        ips[name] = status.network.ip
    out["ips"] = ips
    container(server, server_cfg, "httpd", ["/bin/httpd", "-f", "-p", "80", "-h", "/www"])
    probe = container(client, client_cfg, "probe", ["/bin/sleep", "1000000"])
    time.sleep(0.5)
    ping = rt.ExecSync(
        api.ExecSyncRequest(
            container_id=probe, cmd=["/bin/ping", "-c", "1", "-W", "2", ips["server"]], timeout=10
        )
    )
    out["pod_to_pod_ping"] = ping.exit_code == 0
    wget = rt.ExecSync(
        api.ExecSyncRequest(
            container_id=probe, cmd=["/bin/wget", "-qO-", f"http://{ips['server']}/"], timeout=10
        )
    )
    out["pod_to_pod_http"] = wget.stdout.decode(errors="replace").strip()
    lo = rt.ExecSync(
        api.ExecSyncRequest(container_id=probe, cmd=["/bin/ip", "-o", "link", "show", "lo"], timeout=10)
    )
    # containerd calls loopback on its own, outside the conflist.
    out["lo_up"] = ",UP" in lo.stdout.decode(errors="replace")
    # hostPort from the sandbox host: the bridge's gateway address and localhost.
    gateway = ips["server"].rsplit(".", 1)[0] + ".1"
    out["host_port_gateway"] = fetch(gateway, host_port)
    out["host_port_localhost"] = fetch("127.0.0.1", host_port)

    # Teardown as kubelet does it: stop (CNI DEL with the netns), then remove (containerd
    # DELs again, with CNI_NETNS="").
    errors = []
    for pod in (server, client):
        for call, req in [
            (rt.StopPodSandbox, api.StopPodSandboxRequest(pod_sandbox_id=pod)),
            (rt.RemovePodSandbox, api.RemovePodSandboxRequest(pod_sandbox_id=pod)),
        ]:
            try:
                call(req, timeout=60)
            except grpc.RpcError as e:
                errors.append(f"{call._method}: {e.details()}")
    out["teardown_errors"] = errors
    out["pods_left"] = len(rt.ListPodSandbox(api.ListPodSandboxRequest()).items)
    print(json.dumps(out))


def connect(sock):
    import grpc
    from cri_api.v1 import api_pb2_grpc as rpc
    from cri_api.v1 import api_pb2 as api

    rt = rpc.RuntimeServiceStub(grpc.insecure_channel("unix://" + sock))
    deadline = time.time() + 20
    while True:
        try:
            rt.Version(api.VersionRequest(), timeout=2)
            return rt, api, grpc
        except grpc.RpcError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def pod(sock, ref, name, cgroup_parent, host_port=None, annotations=()):
    """RunPodSandbox (with a hostPort to 80 and annotations, as kubelet passes a pod's) and an
    httpd container serving /www; the pod's IP."""
    rt, api, _ = connect(sock)
    ports = []
    if host_port:
        ports = [api.PortMapping(protocol=api.TCP, container_port=80, host_port=int(host_port))]
    cfg = api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, namespace="default", uid=str(uuid.uuid4())),
        hostname=name,
        log_directory="",
        port_mappings=ports,
        annotations=dict(a.split("=", 1) for a in annotations),
        linux=api.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent),
    )
    pod_id = rt.RunPodSandbox(api.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    status = rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status
    ccfg = api.ContainerConfig(
        metadata=api.ContainerMetadata(name="httpd"),
        image=api.ImageSpec(image=ref),
        command=["/bin/httpd", "-f", "-p", "80", "-h", "/www"],
        linux=api.LinuxContainerConfig(),
    )
    cid = rt.CreateContainer(
        api.CreateContainerRequest(pod_sandbox_id=pod_id, config=ccfg, sandbox_config=cfg)
    ).container_id
    rt.StartContainer(api.StartContainerRequest(container_id=cid))
    print(json.dumps({"pod": pod_id, "container": cid, "ip": status.network.ip}))


def exec_in(sock, cid, cmd):
    rt, api, _ = connect(sock)
    r = rt.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=20))
    print(json.dumps({"exit": r.exit_code, "stdout": r.stdout.decode(errors="replace"),
                      "stderr": r.stderr.decode(errors="replace")}))


def remove(sock, pod_id):
    """StopPodSandbox (CNI DEL with the netns) then RemovePodSandbox (containerd DELs again,
    with CNI_NETNS="")."""
    rt, api, grpc = connect(sock)
    errors = []
    for call, req in [
        (rt.StopPodSandbox, api.StopPodSandboxRequest(pod_sandbox_id=pod_id)),
        (rt.RemovePodSandbox, api.RemovePodSandboxRequest(pod_sandbox_id=pod_id)),
    ]:
        try:
            call(req, timeout=60)
        except grpc.RpcError as e:
            errors.append(f"{call._method}: {e.details()}")
    left = len(rt.ListPodSandbox(api.ListPodSandboxRequest()).items)
    print(json.dumps({"errors": errors, "pods_left": left}))


def main():
    if sys.argv[1] == "image":
        build_image(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif sys.argv[1] == "pod":
        port = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6].isdigit() else None
        annotations = [a for a in sys.argv[6:] if "=" in a]
        pod(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], port, annotations)
    elif sys.argv[1] == "exec":
        exec_in(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1] == "remove":
        remove(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")


if __name__ == "__main__":
    main()
