package dev.forge.infra.hdfs;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.hdfs.server.datanode.DataNode;

/**
 * A single-node HDFS (a NameNode and one DataNode, WebHDFS on, permissions off), every port on 127.0.0.1.
 *
 * <p>Arguments are key=value: base (the data folder, wiped), and the ports namenode, http, datanode,
 * datanode-http, datanode-ipc, datanode-proxy (0, the default, picks a free one), ready-file. Once up it
 * prints {@code MiniHdfs ready {...}} and writes the same JSON to ready-file; SIGTERM shuts it down, and so
 * does the end of the process watch-pid (the test run that started it), so none is left behind.
 */
public final class MiniHdfs {
  public static void main(String[] args) throws Exception {
    Map<String, String> opts = new HashMap<>();
    for (String arg : args) {
      String[] kv = arg.split("=", 2);
      opts.put(kv[0].replaceFirst("^--", ""), kv.length > 1 ? kv[1] : "");
    }
    String host = "127.0.0.1";
    Configuration conf = new HdfsConfiguration();
    conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, opts.getOrDefault("base", "/tmp/forge-minihdfs"));
    conf.setBoolean("dfs.webhdfs.enabled", true);
    conf.setBoolean("dfs.permissions.enabled", false);
    conf.set("dfs.datanode.address", host + ":" + opts.getOrDefault("datanode", "0"));
    conf.set("dfs.datanode.http.address", host + ":" + opts.getOrDefault("datanode-http", "0"));
    conf.set("dfs.datanode.ipc.address", host + ":" + opts.getOrDefault("datanode-ipc", "0"));
    conf.set("dfs.datanode.http.internal-proxy.port", opts.getOrDefault("datanode-proxy", "0"));
    conf.set("dfs.namenode.secondary.http-address", host + ":0");
    MiniDFSCluster cluster =
        new MiniDFSCluster.Builder(conf)
            .numDataNodes(1)
            .nameNodePort(Integer.parseInt(opts.getOrDefault("namenode", "0")))
            .nameNodeHttpPort(Integer.parseInt(opts.getOrDefault("http", "0")))
            .checkDataNodeAddrConfig(true)
            .format(true)
            .build();
    cluster.waitActive();
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  cluster.shutdown();
                  stopped.countDown();
                }));
    String watched = opts.get("watch-pid");
    if (watched != null && !watched.isEmpty()) {
      Thread watcher =
          new Thread(
              () -> {
                while (ProcessHandle.of(Long.parseLong(watched)).map(ProcessHandle::isAlive).orElse(false)) {
                  try {
                    Thread.sleep(1000);
                  } catch (InterruptedException e) {
                    return;
                  }
                }
                System.exit(0); // runs the shutdown hook
              });
      watcher.setDaemon(true);
      watcher.start();
    }
    DataNode datanode = cluster.getDataNodes().get(0);
    String ready =
        String.format(
            "{\"namenode\": %d, \"http\": %d, \"datanode_http\": %d}",
            cluster.getNameNodePort(),
            cluster.getNameNode().getHttpAddress().getPort(),
            datanode.getInfoPort());
    String file = opts.get("ready-file");
    if (file != null && !file.isEmpty()) {
      Path target = Path.of(file);
      Path partial = Path.of(file + ".partial");
      Files.writeString(partial, ready, StandardCharsets.UTF_8);
      Files.move(partial, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
    System.out.println("MiniHdfs ready " + ready);
    System.out.flush();
    stopped.await();
  }
}
